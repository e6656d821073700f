"""A local folder mirroring S3 objects, for a Spark that cannot read ``s3://`` itself.

Local Spark has no EMRFS (and no Maven repository here for hadoop-aws), so a step reads and
writes ``<root>/<bucket>/<key>`` instead of ``s3://<bucket>/<key>``. Before a step the
objects under every S3 location its arguments name are downloaded (only new or changed
ones); after it, every file the step created, changed or deleted under those buckets is
written back to (or deleted from) the same key, through the S3 API.

Hadoop's local filesystem leaves checksum files (``.<name>.crc``) beside what it writes;
EMRFS writes none, so they are never uploaded.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

S3_URI_PREFIXES = ("s3://", "s3a://", "s3n://")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str  # may be "" (the whole bucket) or end with "/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Location | None:
    """``s3://bucket/key`` (also s3a/s3n) -> S3Location; None for anything else."""
    for scheme in S3_URI_PREFIXES:
        if uri.startswith(scheme):
            bucket, _, key = uri[len(scheme) :].partition("/")
            return S3Location(bucket, key) if bucket else None
    return None


def _is_artifact(relative: str) -> bool:
    """Files of the local filesystem that EMRFS would not write (checksums, temp dirs)."""
    parts = relative.split("/")
    name = parts[-1]
    return (
        (name.startswith(".") and name.endswith(".crc"))
        or "_temporary" in parts
        or any(p.startswith(".spark-staging") for p in parts)
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class SyncReport:
    """What one sync moved, for the step's controller log."""

    downloaded: int = 0
    uploaded: int = 0
    deleted: int = 0
    keys: list[str] = field(default_factory=list)


class S3Mirror:
    """``<root>/<bucket>/<key>`` <-> ``s3://<bucket>/<key>`` through an S3 client."""

    def __init__(self, root: Path, s3_client: Any) -> None:
        self.root = Path(root)
        self.s3 = s3_client

    def local_path(self, location: S3Location) -> Path:
        return self.root / location.bucket / location.key

    def local_uri(self, uri: str) -> str:
        """The ``file://`` URI standing for an S3 URI (a trailing slash is kept)."""
        location = parse_s3_uri(uri)
        if location is None:
            return uri
        path = str(self.local_path(location))
        if location.key.endswith("/") or not location.key:
            path = path.rstrip("/") + "/"
        return "file://" + path

    def _objects(self, location: S3Location) -> Iterable[dict[str, Any]]:
        """Objects at ``key`` itself or under ``key/`` (not ``key-other``)."""
        base = location.key.rstrip("/")
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=location.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not base or key == base or key.startswith(base + "/"):
                    yield obj

    def download(self, locations: Iterable[S3Location]) -> SyncReport:
        """Make the mirror equal S3 under each location: new/changed objects are downloaded,
        files whose object is gone are removed (with their stale checksum files)."""
        report = SyncReport()
        for location in locations:
            present: set[Path] = set()
            for obj in self._objects(location):
                key = obj["Key"]
                if key.endswith("/"):  # a "folder" marker object
                    continue
                target = self.root / location.bucket / key
                present.add(target)
                etag = obj.get("ETag", "").strip('"')
                if (
                    target.is_file()
                    and target.stat().st_size == obj["Size"]
                    and ("-" in etag or _md5(target) == etag)
                ):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # A name of its own: two jobs may download the same object at once.
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.emu-part")
                self.s3.download_file(location.bucket, key, str(tmp))
                tmp.replace(target)
                # A checksum file of an earlier version would fail Hadoop's local reads.
                target.with_name(f".{target.name}.crc").unlink(missing_ok=True)
                report.downloaded += 1
            report.deleted += self._remove_stale(location, present)
        return report

    def _remove_stale(self, location: S3Location, present: set[Path]) -> int:
        local = self.local_path(location)
        candidates = [local] if local.is_file() else []
        if local.is_dir():
            candidates = [p for p in local.rglob("*") if p.is_file()]
        removed = 0
        for path in candidates:
            relative = path.relative_to(self.root).as_posix()
            if path in present or _is_artifact(relative) or path.name.endswith(".emu-part"):
                continue
            path.unlink()
            path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
            removed += 1
        return removed

    def snapshot(self, buckets: Iterable[str]) -> dict[str, tuple[int, int]]:
        """``{"bucket/key": (size, mtime_ns)}`` of every mirrored file of ``buckets``."""
        files: dict[str, tuple[int, int]] = {}
        for bucket in buckets:
            base = self.root / bucket
            if not base.is_dir():
                continue
            for dirpath, _dirs, names in os.walk(base):
                for name in names:
                    path = Path(dirpath) / name
                    relative = path.relative_to(self.root).as_posix()
                    if name.endswith(".emu-part") or _is_artifact(relative):
                        continue
                    stat = path.stat()
                    files[relative] = (stat.st_size, stat.st_mtime_ns)
        return files

    def upload_changes(
        self, before: dict[str, tuple[int, int]], buckets: Iterable[str]
    ) -> SyncReport:
        """Write back what changed since ``before``: new/changed files, deleted files."""
        report = SyncReport()
        after = self.snapshot(buckets)
        for relative, signature in sorted(after.items()):
            if before.get(relative) == signature:
                continue
            bucket, _, key = relative.partition("/")
            self.s3.upload_file(str(self.root / relative), bucket, key)
            report.uploaded += 1
            report.keys.append(f"s3://{relative}")
        for relative in sorted(set(before) - set(after)):
            bucket, _, key = relative.partition("/")
            self.s3.delete_object(Bucket=bucket, Key=key)
            report.deleted += 1
        return report
