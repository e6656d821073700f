"""create-bucket: the resulting bucket checked with plain boto3, and its refusal paths."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
from botocore.exceptions import ClientError

from include.config import PROJECT_TAG
from include.infra.bucket import default_bucket_name, validate_bucket_name
from include.infra.errors import RefusedError
from tests.include.infra.conftest import ACCOUNT_ID, BUCKET, REGION


def _assert_hardened(s3, bucket: str, retention_days: int = 30) -> None:
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    tls = [s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport"]
    assert len(tls) == 1
    assert tls[0]["Effect"] == "Deny"
    assert tls[0]["Principal"] == "*"
    assert tls[0]["Action"] == "s3:*"
    assert tls[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(tls[0]["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]

    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    logs = next(r for r in lifecycle if r["ID"] == "expire-logs")
    assert logs["Status"] == "Enabled"
    assert logs["Filter"]["Prefix"] == "fruits/logs/"
    assert logs["Expiration"]["Days"] == retention_days

    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags["Project"] == PROJECT_TAG
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION


def test_create_bucket_with_generated_name_is_private_encrypted_tls_only(aws, cli, s3):
    result = cli("create-bucket")
    assert result.code == 0, result.err
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert len(names) == 1
    bucket = names[0]
    today = datetime.now(UTC).date()
    assert bucket == f"fruits-features-{ACCOUNT_ID}-{today:%Y%m%d}"
    _assert_hardened(s3, bucket)
    assert f"export FRUITS_BUCKET={bucket}" in result.out
    assert f"export FRUITS_REGION={REGION}" in result.out
    assert f"s3://{bucket}/fruits/results/" in result.out


def test_create_bucket_twice_reapplies_settings(aws, cli, s3):
    assert cli("create-bucket", "--bucket", BUCKET, "--log-retention-days", "7").code == 0
    # Someone loosened the bucket by hand: a second run restores the settings.
    s3.delete_public_access_block(Bucket=BUCKET)
    s3.delete_bucket_policy(Bucket=BUCKET)
    result = cli("create-bucket", "--bucket", BUCKET, "--log-retention-days", "14")
    assert result.code == 0, result.err
    assert "already yours" in result.out
    _assert_hardened(s3, BUCKET, retention_days=14)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Fruits-Bucket", "lowercase"),
        ("ab", "3 to 63"),
        ("x" * 64, "3 to 63"),
        ("fruits.features", "dots"),
        ("-fruits", "start and end"),
        ("fruits_features", "lowercase"),
        ("xn--fruits", "reserved"),
        ("fruits-s3alias", "reserved"),
    ],
)
def test_create_bucket_refuses_invalid_names_and_creates_nothing(aws, cli, s3, name, reason):
    result = cli("create-bucket", f"--bucket={name}")
    assert result.code == 2
    assert "invalid bucket name" in result.err
    assert reason in result.err
    assert s3.list_buckets()["Buckets"] == []


def test_create_bucket_refuses_region_outside_allow_list(aws, cli, s3):
    result = cli("create-bucket", "--bucket", BUCKET, "--region", "us-east-1")
    assert result.code == 2
    assert "'us-east-1' is not allowed" in result.err
    assert "eu-west-1" in result.err
    assert s3.list_buckets()["Buckets"] == []


def test_region_from_environment_is_checked_too(aws, cli, s3, monkeypatch):
    monkeypatch.setenv("FRUITS_REGION", "ap-southeast-2")
    result = cli("create-bucket", "--bucket", BUCKET)
    assert result.code == 2
    assert "ap-southeast-2" in result.err
    assert s3.list_buckets()["Buckets"] == []


def test_create_bucket_in_another_allowed_region(aws, cli):
    import boto3

    result = cli("create-bucket", "--bucket", BUCKET, "--region", "eu-central-1")
    assert result.code == 0, result.err
    s3 = boto3.client("s3", region_name="eu-central-1")
    assert s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == "eu-central-1"


def test_existing_bucket_in_another_region_is_refused(aws, cli, s3):
    import boto3

    boto3.client("s3", region_name="eu-west-2").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    result = cli("create-bucket", "--bucket", BUCKET)
    assert result.code == 2
    assert "exists in eu-west-2" in result.err
    with pytest.raises(ClientError):
        s3.get_public_access_block(Bucket=BUCKET)


def test_default_name_falls_back_to_random_and_is_valid():
    first = default_bucket_name(None, date(2026, 3, 1))
    second = default_bucket_name(None, date(2026, 3, 1))
    assert re.fullmatch(r"fruits-features-[0-9a-f]{8}-20260301", first)
    assert first != second
    assert default_bucket_name("123456789012", date(2026, 3, 1)) == (
        "fruits-features-123456789012-20260301"
    )


def test_validate_bucket_name_lists_every_problem():
    with pytest.raises(RefusedError) as excinfo:
        validate_bucket_name("A.b")
    message = str(excinfo.value)
    assert "dots" in message
    assert "lowercase" in message
    assert validate_bucket_name("fruits-features-1") == "fruits-features-1"
