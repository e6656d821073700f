"""Run fingerprints: what decides whether a run's results would change.

The input dataset enters through its manifest's digest (:mod:`include.datasets.manifest`:
every visible file's path, size and content hash, from a local folder or an S3 listing).

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

Everything here is a pure function of its arguments, except :func:`job_package_digest`,
which reads local files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from include.datasets.manifest import sha256_of

FINGERPRINT_VERSION = 1
"""Bumped when the fingerprint's recipe changes, so an old record never matches a new run."""

MANIFEST_FILE = "manifest.json"
FINGERPRINT_FILE = "fingerprint.json"
_BUILTIN_WEIGHTS = ("imagenet", "none")


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
