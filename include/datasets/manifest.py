"""Dataset manifests: every visible file of a dataset, its size and content hash.

A local folder is hashed (:func:`manifest_from_dir`: SHA-256 of each file); an S3 prefix is
described from its *listing* only (:func:`manifest_from_s3_listing`: the object's
``ChecksumSHA256`` when S3 has one, else its ETag), so no image is downloaded to describe it.
The manifest's **digest** is the SHA-256 of its canonical JSON (sorted entries, the root left
out: the same images in another folder are the same input). The run fingerprint
(:mod:`include.reruns.fingerprint`) and the packed shards' folder
(:func:`include.datasets.s3.validate_s3_dataset`) are built on it.

Pure functions of their arguments, except :func:`manifest_from_dir` and :func:`file_sha256`,
which read local files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CHUNK = 1024 * 1024


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
