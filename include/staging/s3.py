"""Idempotent uploads to S3 with the provider's ``S3Hook``.

An object is uploaded only when it is new or changed; "unchanged" means the same size and
the same MD5 as the S3 ETag. Uploads use one PUT per file (no multipart below 5 GiB), so
the ETag of an SSE-S3 object *is* its MD5. Every object is written with server-side
encryption (``encrypt=True``) and the bucket's default private ACL.

The dataset's upload that uses them: :mod:`include.datasets.upload`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

# boto3 switches to multipart at 8 MiB by default; a multipart ETag is not an MD5, so
# uploads stay single-part up to S3's 5 GiB PUT limit (parquet shards are ~128 MiB).
SINGLE_PUT_LIMIT = 5 * 1024**3 - 1
_CHUNK = 1024 * 1024

Progress = Callable[[int, int], None]


@dataclass
class UploadSummary:
    """What an upload did: counts of objects uploaded, skipped (unchanged) and deleted."""

    uri: str
    uploaded: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes_uploaded: int = 0
    packed: bool = False
    keys: list[str] = field(default_factory=list)

    @property
    def objects(self) -> int:
        """Number of objects the prefix holds after the upload."""
        return self.uploaded + self.skipped

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (for XCom); the key list is left out, it can be 22k entries long."""
        data = asdict(self)
        data.pop("keys")
        data["objects"] = self.objects
        return data


def md5_of(path: Path) -> str:
    """Hex MD5 of a file (what S3 reports as the ETag of a single-part SSE-S3 object)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_s3_hook(aws_conn_id: str | None) -> S3Hook:
    """An ``S3Hook`` that uploads single-part (so ETags are MD5s)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(
        aws_conn_id=aws_conn_id, transfer_config_args={"multipart_threshold": SINGLE_PUT_LIMIT}
    )


def _remote_state(hook: S3Hook, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """``{key: (size, etag)}`` of every object under ``prefix``."""
    state = {}
    for item in hook.iter_file_metadata(prefix=prefix, bucket_name=bucket):
        state[item["Key"]] = (int(item["Size"]), str(item["ETag"]).strip('"'))
    return state


def upload_files(
    hook: S3Hook,
    files: Mapping[str, Path],
    bucket: str,
    *,
    remote: Mapping[str, tuple[int, str]] | None = None,
    summary: UploadSummary | None = None,
    progress: Progress | None = None,
) -> UploadSummary:
    """Upload ``{key: local path}`` to ``bucket``, skipping objects that are unchanged.

    ``remote`` is the known ``{key: (size, etag)}`` state (listed per key when omitted).
    """
    summary = summary if summary is not None else UploadSummary(uri=f"s3://{bucket}/")
    total = len(files)
    for done, (key, path) in enumerate(sorted(files.items()), start=1):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cannot upload {path}: not a file")
        size = path.stat().st_size
        if remote is not None:
            current = remote.get(key)
        else:
            head = hook.head_object(key=key, bucket_name=bucket)
            current = (int(head["ContentLength"]), head["ETag"].strip('"')) if head else None
        if current is not None and current == (size, md5_of(path)):
            summary.skipped += 1
        else:
            hook.load_file(path, key=key, bucket_name=bucket, replace=True, encrypt=True)
            summary.uploaded += 1
            summary.bytes_uploaded += size
        summary.keys.append(key)
        if progress is not None:
            progress(done, total)
    return summary
