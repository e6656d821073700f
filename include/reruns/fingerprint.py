"""Dataset manifests and run fingerprints: what decides whether a run's results would change.

A **manifest** lists the input dataset: every visible file's relative path, size and content
hash. A local folder is hashed here (SHA-256 of each file); an S3 prefix is described from
its *listing* only (the object's ``ChecksumSHA256`` when S3 has one, else its ETag), so no
image is downloaded to decide anything. The manifest's **digest** is the SHA-256 of its
canonical JSON (sorted entries, the root left out: the same images in another folder are
the same input).

A **fingerprint** is the SHA-256 of every input that changes the results:

* the manifest digest;
* the weights: their source kind and, for a file, the digest of its content (a path that
  moved is the same weights; a file rewritten in place is not); for ``s3://`` weights the
  object's checksum/ETag from ``HeadObject``;
* **every field** of :class:`include.params.job_args.JobSettings`, taken generically with
  :func:`dataclasses.asdict` (mode, sample settings, seed, PCA target / k / solver, image
  size, batch size, and any field added later, e.g. the model runtime), with ``weights``
  replaced by the weights' identity above;
* the job package (the version in ``pyproject.toml`` and the digest of the files that go
  into ``spark_jobs.zip``);
* the execution environment the caller names (e.g. the EMR release label).

The feature cache (``feature_cache`` Param, ``--feature-cache``) is deliberately not part of
it: a run with the cache gives the results of a full recompute (bit-identical features, the
same PCA), so turning it on or off must not make an unchanged run rerun. That is why it is
a guard setting and an argument of ``build_job_arguments``, not a ``JobSettings`` field.

Everything here is a pure function of its arguments, except :func:`manifest_from_dir`,
:func:`file_sha256` and :func:`job_package_digest`, which read local files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

FINGERPRINT_VERSION = 1
"""Bumped when the fingerprint's recipe changes, so an old record never matches a new run."""

MANIFEST_FILE = "manifest.json"
FINGERPRINT_FILE = "fingerprint.json"
_CHUNK = 1024 * 1024
_BUILTIN_WEIGHTS = ("imagenet", "none")


class ManifestError(ValueError):
    """The dataset cannot be described (missing folder, no files, bad listing)."""


def canonical_json(value: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no whitespace, plain ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_of(value: Any) -> str:
    """Hex SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("ascii")).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a local file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- manifests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One input file: path relative to the dataset root (POSIX), size, content hash."""

    path: str
    size: int
    hash: str


@dataclass(frozen=True)
class Manifest:
    """The files of one dataset, sorted by path. ``hash_kind`` says what ``hash`` is."""

    root: str
    hash_kind: str  # "sha256" (local files) or "s3-listing" (ChecksumSHA256 / ETag)
    entries: tuple[ManifestEntry, ...] = field(default_factory=tuple)

    @property
    def files(self) -> int:
        return len(self.entries)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)

    @property
    def digest(self) -> str:
        """SHA-256 of the entries (not the root): the identity of the input's content."""
        return sha256_of(
            {
                "hash_kind": self.hash_kind,
                "entries": [[e.path, e.size, e.hash] for e in self.entries],
            }
        )

    def summary(self) -> dict[str, Any]:
        """Small enough for XCom and logs: root, counts, digest."""
        return {
            "root": self.root,
            "hash_kind": self.hash_kind,
            "files": self.files,
            "total_bytes": self.total_bytes,
            "digest": self.digest,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole manifest as JSON data (what ``manifest.json`` holds)."""
        return {
            **self.summary(),
            "entries": [{"path": e.path, "size": e.size, "hash": e.hash} for e in self.entries],
        }


def _visible(relative: Path) -> bool:
    # Hidden files and folders are skipped (as validate_dataset and the uploads skip them).
    # Spark also skips "_"-prefixed names; they stay in: an extra rerun is cheap, a wrong
    # skip is not.
    return not any(part.startswith(".") for part in relative.parts)


def manifest_from_dir(root: Path) -> Manifest:
    """Hash every visible file under ``root`` (what the job can read). Reads every file."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ManifestError(f"dataset folder {root} does not exist or is not a folder")
    entries = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and _visible(relative):
            entries.append(
                ManifestEntry(relative.as_posix(), path.stat().st_size, file_sha256(path))
            )
    if not entries:
        raise ManifestError(f"dataset folder {root} holds no files")
    return Manifest(root=str(root.resolve()), hash_kind="sha256", entries=tuple(entries))


def manifest_from_s3_listing(uri: str, objects: Iterable[Mapping[str, Any]]) -> Manifest:
    """A manifest from ``ListObjectsV2`` ``Contents`` items under ``uri`` (no download).

    ``uri`` is ``s3://bucket/prefix/``; each item needs ``Key``, ``Size`` and ``ETag`` and may
    carry ``ChecksumSHA256`` (preferred: it is a content hash whatever the upload method;
    a multipart ETag is not an MD5 but still changes whenever the object does). Folder
    markers (keys ending in ``/``) and hidden files are left out, as the job leaves them out.
    """
    if not uri.startswith("s3://"):
        raise ManifestError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    entries = []
    for item in objects:
        key = str(item["Key"])
        if not key.startswith(base) or key.endswith("/"):
            continue
        relative = key[len(base) :]
        if not relative or not _visible(Path(relative)):
            continue
        checksum = item.get("ChecksumSHA256")
        content = f"sha256:{checksum}" if checksum else f"etag:{str(item['ETag']).strip(chr(34))}"
        entries.append(ManifestEntry(relative, int(item["Size"]), content))
    if not entries:
        raise ManifestError(f"no objects under {uri}")
    entries.sort(key=lambda e: e.path)
    return Manifest(root=f"s3://{bucket}/{base}", hash_kind="s3-listing", entries=tuple(entries))


# --- weights and job package ---------------------------------------------------------------


def weights_identity(
    weights: str, *, file_digest: str | None = None, s3_checksum: str | None = None
) -> dict[str, Any]:
    """What identifies the weights, without their location where the content is known.

    ``imagenet`` and ``none`` (seeded random init) are fixed by name. A local file needs
    ``file_digest`` (its SHA-256); an ``s3://`` URI needs ``s3_checksum`` (the object's
    ChecksumSHA256 or ETag from HeadObject). Raises ValueError when the digest is missing:
    a fingerprint that silently ignored the weights would skip runs it must not skip.
    """
    if weights in _BUILTIN_WEIGHTS:
        return {"kind": weights}
    if weights.startswith("s3://"):
        if not s3_checksum:
            raise ValueError(f"weights {weights}: the object's checksum/ETag is needed")
        return {"kind": "s3", "uri": weights, "checksum": s3_checksum}
    if not file_digest:
        raise ValueError(f"weights file {weights}: its content digest is needed")
    return {"kind": "file", "sha256": file_digest}


def job_package_digest(package_dir: Path) -> str:
    """SHA-256 over the (relative path, bytes) of every file that goes into the job zip."""
    from include.staging.job_package import _package_files

    package_dir = Path(package_dir)
    digest = hashlib.sha256()
    for path in _package_files(package_dir):
        relative = path.relative_to(package_dir).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        content = path.read_bytes()
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


# --- the fingerprint -----------------------------------------------------------------------


def settings_fields(settings: Any) -> dict[str, Any]:
    """Every field of a settings dataclass (generically: a field added later is included)."""
    if not is_dataclass(settings) or isinstance(settings, type):
        raise TypeError(f"expected a dataclass instance, got {type(settings).__name__}")
    return asdict(settings)


def run_fingerprint(
    job: Any,
    *,
    manifest_digest: str,
    weights: Mapping[str, Any],
    job_package: Mapping[str, Any],
    environment: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprint of one run: ``{"fingerprint": hex, "components": {...}}``.

    ``job`` is the run's ``JobSettings`` (every field enters; ``weights`` is replaced by
    ``weights``, the output of :func:`weights_identity`). ``job_package`` is e.g.
    ``{"version": "0.1.0", "sha256": job_package_digest(...)}``; ``environment`` holds what
    the caller's platform adds (the EMR release label). Equal fingerprints mean equal results.
    """
    settings = settings_fields(job)
    settings["weights"] = dict(weights)
    components = {
        "fingerprint_version": FINGERPRINT_VERSION,
        "manifest_digest": manifest_digest,
        "job_settings": settings,
        "job_package": dict(job_package),
        "environment": dict(environment or {}),
    }
    return {"fingerprint": sha256_of(components), "components": components}


# --- the last-success record ---------------------------------------------------------------

LAST_SUCCESS_FILE = "_last_success.json"
"""Beside the runs' folders (``<results>/_last_success.json``); written only on success."""


def build_success_record(
    fingerprint: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
    run_key: str,
    results_uri: str,
    report_uri: str | None,
    finished_at: str,
    counts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record a successful run leaves, for the next run to compare with."""
    return {
        "fingerprint": fingerprint["fingerprint"],
        "components": fingerprint["components"],
        "dag_id": dag_id,
        "run_id": run_id,
        "run_key": run_key,
        "results_uri": results_uri,
        "report_uri": report_uri,
        "finished_at": finished_at,
        "counts": dict(counts or {}),
    }


def unchanged_since(
    record: Mapping[str, Any] | None, fingerprint: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The earlier run's record when its fingerprint equals this run's, else None."""
    if not record or record.get("fingerprint") != fingerprint["fingerprint"]:
        return None
    return record


def changed_components(
    record: Mapping[str, Any] | None, fingerprint: Mapping[str, Any]
) -> list[str]:
    """Which top-level components (and settings fields) differ from the record: for the log."""
    if not record:
        return ["(no earlier successful run)"]
    old, new = record.get("components") or {}, fingerprint["components"]
    changed = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        if name == "job_settings" and isinstance(old.get(name), dict):
            before, after = old[name], new.get(name) or {}
            fields = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            changed += [f"job_settings.{f}" for f in fields]
        else:
            changed.append(name)
    return changed
