"""Download one run's results (``<base>/<run_id>/``) from S3 to a local folder, atomically."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.infra.aws import AwsContext
from include.infra.errors import InfraError, RefusedError

SUCCESS_MARKER = "_SUCCESS"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")

BytesProgress = Callable[[int], None]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (no slashes at the ends)."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise RefusedError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key.strip("/")


def list_runs(ctx: AwsContext, base_uri: str) -> list[dict[str, Any]]:
    """Run ids under ``base_uri`` and whether each finished (has ``_SUCCESS``)."""
    bucket, prefix = parse_s3_uri(base_uri)
    paginator = ctx.client("s3").get_paginator("list_objects_v2")
    runs: list[dict[str, Any]] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            run_id = common["Prefix"][len(prefix) + 1 :].strip("/")
            marker = f"{prefix}/{run_id}/{SUCCESS_MARKER}"
            listed = ctx.client("s3").list_objects_v2(Bucket=bucket, Prefix=marker, MaxKeys=1)
            runs.append({"run_id": run_id, "complete": listed.get("KeyCount", 0) > 0})
    return runs


def download_results(
    ctx: AwsContext,
    base_uri: str,
    run_id: str,
    dest: Path,
    *,
    overwrite: bool = False,
    allow_incomplete: bool = False,
    progress_factory: Callable[[int], BytesProgress] | None = None,
) -> dict[str, Any]:
    """Copy ``<base_uri>/<run_id>/`` to ``dest``; return ``{files, bytes, dest, source}``.

    Refuses a run without ``_SUCCESS`` (the job writes it last; without it the run failed or
    is still running) unless ``allow_incomplete``, and an existing ``dest`` unless
    ``overwrite``. Files land in a temporary folder beside ``dest`` that is renamed into place
    at the end, so a failed download never leaves a half-written ``dest``.
    ``progress_factory(total_bytes)`` returns a callback fed the bytes of each chunk.
    """
    if not _RUN_ID_RE.match(run_id):
        raise RefusedError(f"invalid run id {run_id!r}")
    bucket, base = parse_s3_uri(base_uri)
    prefix = f"{base}/{run_id}/" if base else f"{run_id}/"
    source = f"s3://{bucket}/{prefix}"
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and not overwrite:
        raise RefusedError(f"{dest} already exists; pass --overwrite to replace it")

    s3 = ctx.client("s3")
    objects = [
        item
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if not item["Key"].endswith("/")
    ]
    if not objects:
        raise RefusedError(f"no results at {source} (check the run id and --source)")
    keys = {item["Key"][len(prefix) :] for item in objects}
    if SUCCESS_MARKER not in keys and not allow_incomplete:
        raise RefusedError(
            f"{source} has no {SUCCESS_MARKER}: the run failed or is still running "
            "(pass --allow-incomplete to download it anyway)"
        )
    total = sum(int(item["Size"]) for item in objects)
    callback = progress_factory(total) if progress_factory else None

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        for item in objects:
            relative = item["Key"][len(prefix) :]
            target = (staging / relative).resolve()
            if not target.is_relative_to(staging.resolve()):
                raise InfraError(f"refusing key that escapes the destination: {item['Key']!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target), Callback=callback)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            staging.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"source": source, "dest": str(dest), "files": len(objects), "bytes": total}
