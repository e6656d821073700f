"""Skip unchanged runs: fingerprint a run, compare it with the last successful one, record it.

The pipeline DAGs call three things:

* :func:`fingerprint_run` — the dataset manifest and the run fingerprint
  (:mod:`include.reruns.fingerprint`) of a local dataset folder and the run's job settings.
* :func:`decide` — skip or run: a run is skipped when its fingerprint equals the last
  successful run's, that run's results are still there (``_SUCCESS``), and ``force`` is off.
* the record stores: ``<results>/_last_success.json``, in S3 beside the runs' result folders
  (:func:`read_s3_record` / :func:`write_s3_record`) or in the local results folder
  (:func:`read_local_record` / :func:`write_local_record`). A record is written only by a
  run that succeeded, after its results are complete.

A record that cannot be read (damaged JSON) counts as no record: the run goes ahead, which
costs money but never serves stale results.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import REPO_ROOT
from include.datasets.manifest import file_sha256, manifest_from_dir
from include.reruns.fingerprint import (
    LAST_SUCCESS_FILE,
    changed_components,
    job_package_digest,
    run_fingerprint,
    unchanged_since,
    weights_identity,
)
from include.staging import job_package

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include.datasets.manifest import Manifest

log = logging.getLogger(__name__)


def project_version() -> str:
    """The project's version from ``pyproject.toml`` (the job package ships with it)."""

    try:
        with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def job_package_identity() -> dict[str, str]:
    """Version and content digest of the job package that ``build_job_package`` would build."""

    return {
        "version": project_version(),
        "sha256": job_package_digest(job_package.REPO_ROOT / job_package.PACKAGE_NAME),
    }


def fingerprint_from_manifest(
    job: Any,
    manifest: Manifest,
    *,
    environment: Mapping[str, Any] | None = None,
    s3_weights_checksum: str | None = None,
) -> dict[str, Any]:
    """The fingerprint of a run of ``job`` on the dataset ``manifest`` describes.

    A local weights file is hashed here; ``s3://`` weights need ``s3_weights_checksum``
    (from HeadObject, see :func:`s3_object_checksum`).
    """
    weights = job.weights
    file_digest = None
    if weights not in ("imagenet", "none") and not weights.startswith("s3://"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        file_digest = file_sha256(path)
    return run_fingerprint(
        job,
        manifest_digest=manifest.digest,
        weights=weights_identity(weights, file_digest=file_digest, s3_checksum=s3_weights_checksum),
        job_package=job_package_identity(),
        environment=environment,
    )


def fingerprint_run(
    job: Any,
    dataset_dir: Path,
    *,
    environment: Mapping[str, Any] | None = None,
    s3_weights_checksum: str | None = None,
) -> tuple[Manifest, dict[str, Any]]:
    """The manifest of the local folder ``dataset_dir`` and the fingerprint of a run on it."""
    manifest = manifest_from_dir(Path(dataset_dir))
    fingerprint = fingerprint_from_manifest(
        job, manifest, environment=environment, s3_weights_checksum=s3_weights_checksum
    )
    return manifest, fingerprint


@dataclass(frozen=True)
class Decision:
    """Skip or run, and the sentence that says why (for the task log)."""

    skip: bool
    reason: str
    earlier: Mapping[str, Any] | None = None


def decide(
    record: Mapping[str, Any] | None,
    fingerprint: Mapping[str, Any],
    *,
    force: bool,
    earlier_results_exist: bool,
) -> Decision:
    """Whether this run can be skipped because an earlier run holds the same results."""
    earlier = unchanged_since(record, fingerprint)
    short = fingerprint["fingerprint"][:12]
    if earlier is None:
        what = ", ".join(changed_components(record, fingerprint))
        return Decision(False, f"fingerprint {short} is new (changed: {what}): running")
    where = (
        f"run {earlier.get('run_id')} holds the same results at {earlier.get('results_uri')} "
        f"(report: {earlier.get('report_uri') or 'none'})"
    )
    if force:
        return Decision(False, f"fingerprint {short} unchanged, but force is set: {where}; rerun")
    if not earlier_results_exist:
        return Decision(
            False,
            f"fingerprint {short} unchanged, but the results of run {earlier.get('run_id')} "
            f"at {earlier.get('results_uri')} are gone (no _SUCCESS): running again",
        )
    return Decision(True, f"unchanged since the last successful run (fingerprint {short}): {where}")


# --- local store ---------------------------------------------------------------------------


def _loads(text: str, where: str) -> dict[str, Any] | None:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        log.warning("ignoring the damaged record %s (%s): this run is not skipped", where, exc)
        return None
    return record if isinstance(record, dict) else None


def read_local_record(results_dir: Path) -> dict[str, Any] | None:
    """The last successful local run's record, or None."""
    path = Path(results_dir) / LAST_SUCCESS_FILE
    if not path.is_file():
        return None
    return _loads(path.read_text(encoding="utf-8"), str(path))


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON to ``path`` through a temporary file: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)
    return path


def write_local_record(results_dir: Path, record: Mapping[str, Any]) -> Path:
    """Replace ``<results_dir>/_last_success.json`` atomically."""
    return write_json_atomic(Path(results_dir) / LAST_SUCCESS_FILE, dict(record))


def local_results_exist(record: Mapping[str, Any]) -> bool:
    """The earlier run's local results folder still has its ``_SUCCESS`` marker."""
    return (Path(str(record.get("results_uri", ""))) / "_SUCCESS").is_file()


# --- S3 store ------------------------------------------------------------------------------


def record_key(results_base_key: str) -> str:
    """``<prefix>/results/_last_success.json``: beside the runs' result folders."""
    return f"{results_base_key.strip('/')}/{LAST_SUCCESS_FILE}"


def read_s3_record(hook: S3Hook, bucket: str, key: str) -> dict[str, Any] | None:
    """The last successful EMR run's record, or None when there is none."""
    if not hook.check_for_key(key, bucket_name=bucket):
        return None
    return _loads(hook.read_key(key, bucket_name=bucket), f"s3://{bucket}/{key}")


def write_s3_record(hook: S3Hook, bucket: str, key: str, record: Mapping[str, Any]) -> None:
    """Replace the record (one PUT: readers see the old or the new one, never a part)."""
    hook.load_string(
        json.dumps(dict(record), indent=2, sort_keys=True, default=str),
        key=key,
        bucket_name=bucket,
        replace=True,
        encrypt=True,
    )


def s3_results_exist(hook: S3Hook, record: Mapping[str, Any]) -> bool:
    """The earlier run's results in S3 still have their ``_SUCCESS`` marker (HeadObject)."""
    uri = str(record.get("results_uri", ""))
    if not uri.startswith("s3://"):
        return False
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return hook.check_for_key(f"{prefix.strip('/')}/_SUCCESS", bucket_name=bucket)


def s3_object_checksum(hook: S3Hook, uri: str) -> str:
    """The object's ChecksumSHA256 (when S3 keeps one) or ETag, from HeadObject (no download).

    Raises FileNotFoundError when the object does not exist.
    """
    bucket, key = hook.parse_s3_url(uri)
    head = hook.head_object(key=key, bucket_name=bucket)
    if not head:
        raise FileNotFoundError(f"{uri} does not exist")
    checksum = head.get("ChecksumSHA256")
    return f"sha256:{checksum}" if checksum else f"etag:{str(head['ETag']).strip(chr(34))}"
