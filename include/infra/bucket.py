"""The project's S3 bucket: a valid unique name, private, encrypted, TLS-only, logs expiring."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import ClientError

from include.config import PROJECT_TAG
from include.infra.aws import AwsContext
from include.infra.errors import InfraError, RefusedError
from include.infra.policies import policy_json, render_policy

BUCKET_LAYOUT: tuple[str, ...] = ("datasets/", "runs/", "results/", "logs/")
"""Folders under ``s3://<bucket>/<prefix>/`` the EMR DAG writes (see ``include.emr.plan``):
``datasets/<name>/packed|images`` (uploaded dataset), ``runs/<run id>/code`` (job package),
``results/<run id>/`` (job output), ``logs/emr/`` (cluster and step logs). Documented, not
created: S3 has no folders, and empty marker objects would show up as zero-byte "files"."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if it is a valid S3 bucket name for this project, else raise RefusedError.

    S3's rules (3-63 characters; lowercase letters, digits, hyphens; starts and ends with a letter
    or digit; reserved prefixes and suffixes), plus one of ours: no dots, because a dotted name
    breaks the TLS certificate of virtual-hosted-style HTTPS requests.
    """
    problems: list[str] = []
    if not 3 <= len(name) <= 63:
        problems.append(f"must be 3 to 63 characters long (it has {len(name)})")
    if "." in name:
        problems.append("must not contain dots (they break TLS for virtual-hosted-style requests)")
    if not _NAME_RE.match(name.replace(".", "a")):
        problems.append(
            "may only use lowercase letters, digits and hyphens, and must start and end "
            "with a letter or digit"
        )
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        problems.append("uses a prefix or suffix reserved by AWS")
    if problems:
        raise RefusedError(f"invalid bucket name {name!r}: " + "; ".join(problems))
    return name


def default_bucket_name(account_id: str | None, today: date | None = None) -> str:
    """``fruits-features-<account id, or 8 random hex>-<yyyymmdd>``: unique, and valid."""
    today = today or datetime.now(UTC).date()
    owner = account_id if account_id else secrets.token_hex(4)
    return validate_bucket_name(f"{PROJECT_TAG}-{owner}-{today:%Y%m%d}")


@dataclass(frozen=True)
class BucketSettings:
    """What :func:`create_bucket` applies to the bucket."""

    bucket: str
    prefix: str
    log_retention_days: int = 30
    incomplete_upload_days: int = 7

    def __post_init__(self) -> None:
        validate_bucket_name(self.bucket)
        if self.log_retention_days < 1:
            raise RefusedError("--log-retention-days must be >= 1")
        if not self.prefix.strip("/"):
            raise RefusedError("the key prefix must not be empty")

    @property
    def key_prefix(self) -> str:
        """The prefix without slashes at either end."""
        return self.prefix.strip("/")


def lifecycle_rules(settings: BucketSettings) -> list[dict[str, Any]]:
    """Expire EMR/Spark logs after N days; abort stale multipart uploads everywhere."""
    return [
        {
            "ID": "expire-logs",
            "Filter": {"Prefix": f"{settings.key_prefix}/logs/"},
            "Status": "Enabled",
            "Expiration": {"Days": settings.log_retention_days},
        },
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {
                "DaysAfterInitiation": settings.incomplete_upload_days
            },
        },
    ]


def make_private_and_encrypted(s3: Any, bucket: str) -> None:
    """Block every kind of public access and encrypt new objects (SSE-S3, bucket keys)."""
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )


def create_bucket(ctx: AwsContext, settings: BucketSettings) -> dict[str, Any]:
    """Create (or re-harden, if we already own it) the bucket; return what was applied.

    Order matters: the public access block goes on before anything else, so the bucket is
    never public, not even for a moment.
    """
    s3 = ctx.client("s3")
    bucket = settings.bucket
    created = True
    try:
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": ctx.region},
            ObjectOwnership="BucketOwnerEnforced",
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "BucketAlreadyOwnedByYou":
            created = False
        elif code == "BucketAlreadyExists":
            raise InfraError(
                f"bucket {bucket!r} already exists in another AWS account; "
                "choose another name with --bucket (or omit it for a generated one)"
            ) from None
        else:
            raise
    if not created:
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        if location != ctx.region:
            raise RefusedError(
                f"bucket {bucket!r} exists in {location}, not {ctx.region}; "
                "use --region to match it or choose another bucket"
            )
    make_private_and_encrypted(s3, bucket)
    policy = render_policy("bucket", bucket=bucket, partition=ctx.partition)
    s3.put_bucket_policy(Bucket=bucket, Policy=policy_json(policy))
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": lifecycle_rules(settings)}
    )
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "Project", "Value": PROJECT_TAG}]}
    )
    return {
        "bucket": bucket,
        "region": ctx.region,
        "created": created,
        "encryption": "SSE-S3 (AES256)",
        "log_retention_days": settings.log_retention_days,
        "layout": [f"s3://{bucket}/{settings.key_prefix}/{folder}" for folder in BUCKET_LAYOUT],
    }


def bucket_tags(ctx: AwsContext, bucket: str) -> dict[str, str]:
    """The bucket's tags ({} when it has none)."""
    try:
        tag_set = ctx.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchTagSet", "NoSuchTagSetError"):
            return {}
        raise
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def bucket_exists(ctx: AwsContext, bucket: str) -> bool:
    """True if the bucket exists and we can reach it."""
    try:
        ctx.client("s3").head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


def empty_and_delete_bucket(ctx: AwsContext, bucket: str) -> int:
    """Delete every object version and delete marker, then the bucket; return objects deleted."""
    s3 = ctx.client("s3")
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        keys = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        # DeleteObjects takes at most 1000 keys per call; a page has at most 1000 of each kind.
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise InfraError(
                    f"could not delete {len(response['Errors'])} object(s) from {bucket!r}, "
                    f"e.g. {first.get('Key')}: {first.get('Message')}"
                )
            deleted += len(batch)
    s3.delete_bucket(Bucket=bucket)
    return deleted
