"""The ``dataset_uri`` Param's form: a dataset already in S3 (``s3://bucket/prefix/``).

:func:`parse_dataset_uri` checks the URI's form (no listing, no network) and splits it;
:func:`normalise_uri` gives it exactly one trailing slash;
:func:`outside_project` says whether it lies outside the project's own ``bucket/prefix/``
(then the EMR nodes need read access to it: ``include/infra/dataset_access.py``).
"""

from __future__ import annotations

import re

# S3's general bucket rules (dots allowed: a data team's bucket is not ours to rename).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Characters that would act as wildcards or policy variables in an IAM document.
_FORBIDDEN_IN_PREFIX = ("*", "?", "$", "\\")


def parse_dataset_uri(uri: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix/`` (prefix without slashes at the ends).

    Raises ValueError with the reason when the URI is not a usable dataset location.
    """
    text = (uri or "").strip()
    if not text.startswith("s3://"):
        raise ValueError(f"dataset_uri must start with s3://, got {uri!r}")
    bucket, _, prefix = text.removeprefix("s3://").partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(f"dataset_uri {uri!r}: {bucket!r} is not a valid S3 bucket name")
    prefix = prefix.strip("/")
    bad = [c for c in _FORBIDDEN_IN_PREFIX if c in prefix]
    if bad or any(ord(c) < 32 for c in prefix):
        raise ValueError(
            f"dataset_uri {uri!r}: the prefix must not contain wildcards, '$', backslashes or "
            "control characters (they would widen the IAM grant)"
        )
    if "//" in prefix:
        raise ValueError(f"dataset_uri {uri!r}: the prefix has an empty path segment ('//')")
    return bucket, prefix


def normalise_uri(uri: str) -> str:
    """``s3://bucket/prefix/`` with exactly one trailing slash (ValueError when malformed)."""
    bucket, prefix = parse_dataset_uri(uri)
    return f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"


def outside_project(uri: str, *, bucket: str, prefix: str) -> bool:
    """True when ``uri`` is not under the project's ``s3://bucket/prefix/``."""
    data_bucket, data_prefix = parse_dataset_uri(uri)
    project = prefix.strip("/")
    if data_bucket != bucket:
        return True
    return not (data_prefix == project or data_prefix.startswith(f"{project}/"))
