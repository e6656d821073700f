"""The dataset's upload: a local Fruits-360-style folder mirrored under one S3 key prefix.

:func:`upload_dataset` mirrors the folder under a key prefix, packed into a few large
parquet shards by default (``spark_jobs.packing``), because the job spends most of its time
reading ~22k small objects otherwise, and deletes objects under that prefix that are no
longer part of the dataset, so the prefix holds exactly one dataset
(:func:`dataset_key_prefix`). The uploads themselves are :mod:`include.staging.s3`'s
idempotent ones. Used by the EMR DAGs and by ``python -m include.infra upload-dataset``.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from include.staging.s3 import (
    Progress,
    UploadSummary,
    _remote_state,
    make_s3_hook,
    upload_files,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)


def dataset_key_prefix(prefix: str, dataset_dir: Path | str, *, pack: bool) -> str:
    """The one key prefix of a dataset: ``<prefix>/datasets/<folder name>/<packed|images>``.

    The EMR DAG and ``python -m include.infra upload-dataset`` both use it, so a dataset
    uploaded ahead of time is found (and skipped) by the DAG's upload task.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset_dir).name).strip("-.") or "dataset"
    return f"{prefix.strip('/')}/datasets/{name}/{'packed' if pack else 'images'}"


def _dataset_files(local_dir: Path) -> dict[str, Path]:
    """Every visible file under ``local_dir`` by relative POSIX path (bad files included:
    the job counts and reports them)."""
    files = {}
    for path in sorted(local_dir.rglob("*")):
        relative = path.relative_to(local_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = path
    return files


def _delete_stale(hook: S3Hook, bucket: str, stale: Iterable[str]) -> int:
    keys = sorted(stale)
    if keys:
        hook.delete_objects(bucket=bucket, keys=keys)
    return len(keys)


def upload_dataset(
    local_dir: Path,
    bucket: str,
    key_prefix: str,
    *,
    aws_conn_id: str | None,
    pack: bool = True,
    progress: Progress | None = None,
) -> UploadSummary:
    """Mirror the dataset at ``local_dir`` under ``s3://bucket/key_prefix/``.

    With ``pack`` the images are packed into parquet shards first (``part-00000.parquet``
    ...; deterministic, so an unchanged dataset uploads nothing); otherwise each file is
    uploaded under its relative path. Objects under the prefix that are not part of the
    dataset any more are deleted afterwards. ``progress(done, total)`` is called after each
    file. Returns an :class:`UploadSummary` whose ``uri`` is the job's ``--input``.
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"dataset folder {local_dir} does not exist or is not a folder")
    prefix = key_prefix.strip("/")
    if not prefix:
        raise ValueError("key_prefix must not be empty: the upload deletes stale keys under it")
    hook = make_s3_hook(aws_conn_id)
    remote = _remote_state(hook, bucket, prefix + "/")
    summary = UploadSummary(uri=f"s3://{bucket}/{prefix}/", packed=pack)
    with tempfile.TemporaryDirectory(prefix="fruits-pack-") as tmp:
        if pack:
            from spark_jobs.packing import pack_images

            packed = pack_images(local_dir, Path(tmp))
            shards = [Path(p) for p in packed.shards]
            if not shards:
                raise ValueError(f"packing {local_dir} produced no parquet shards")
            files = {f"{prefix}/{shard.name}": shard for shard in shards}
        else:
            files = {f"{prefix}/{rel}": path for rel, path in _dataset_files(local_dir).items()}
        if not files:
            raise ValueError(f"dataset folder {local_dir} holds no files to upload")
        upload_files(hook, files, bucket, remote=remote, summary=summary, progress=progress)
    # Stale keys are deleted only after every upload succeeded: a failed upload deletes nothing.
    summary.deleted = _delete_stale(hook, bucket, set(remote) - set(files))
    log.info(
        "dataset %s -> %s: %d uploaded (%d bytes), %d unchanged, %d stale deleted",
        local_dir,
        summary.uri,
        summary.uploaded,
        summary.bytes_uploaded,
        summary.skipped,
        summary.deleted,
    )
    return summary
