"""``create-security-configuration`` in moto, the preflight check of the name, and the
documents (what EMR and IAM get)."""

from __future__ import annotations

import json

import boto3
import pytest

from include.infra.security_configuration import (
    DEFAULT_SECURITY_CONFIGURATION,
    KMS_POLICY_NAME,
    build_security_configuration,
)
from tests.include.infra.conftest import REGION


def _stored(emr, name=DEFAULT_SECURITY_CONFIGURATION) -> dict:
    return json.loads(emr.describe_security_configuration(Name=name)["SecurityConfiguration"])


def test_without_a_key_s3_is_sse_s3_and_local_disks_are_said_to_be_unencrypted(aws, cli, emr):
    result = cli("create-security-configuration")
    assert result.code == 0, result.err
    stored = _stored(emr)["EncryptionConfiguration"]
    assert stored["EnableAtRestEncryption"] is True
    assert stored["EnableInTransitEncryption"] is False
    assert stored["AtRestEncryptionConfiguration"] == {
        "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"}
    }
    assert "local disks: NOT encrypted" in result.out
    assert f"aws ec2 enable-ebs-encryption-by-default --region {REGION}" in result.out
    assert f"export FRUITS_EMR_SECURITY_CONFIGURATION={DEFAULT_SECURITY_CONFIGURATION}" in (
        result.out
    )
    again = cli("create-security-configuration")
    assert again.code == 0
    assert "exists (same settings)" in again.out


def test_with_a_key_local_disks_use_it_and_the_roles_may_use_only_it(aws, cli, emr, iam):
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    for role in ("svc", "ec2"):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    result = cli(
        "create-security-configuration",
        "--kms-key-arn",
        key,
        "--service-role",
        "svc",
        "--instance-role",
        "ec2",
    )
    assert result.code == 0, result.err
    at_rest = _stored(emr)["EncryptionConfiguration"]["AtRestEncryptionConfiguration"]
    assert at_rest["S3EncryptionConfiguration"] == {"EncryptionMode": "SSE-KMS", "AwsKmsKey": key}
    assert at_rest["LocalDiskEncryptionConfiguration"] == {
        "EncryptionKeyProviderType": "AwsKms",
        "AwsKmsKey": key,
        "EnableEbsEncryption": True,
    }
    for role in ("svc", "ec2"):
        document = iam.get_role_policy(RoleName=role, PolicyName=KMS_POLICY_NAME)["PolicyDocument"]
        assert {s["Resource"] for s in document["Statement"]} == {key}
    service = iam.get_role_policy(RoleName="svc", PolicyName=KMS_POLICY_NAME)["PolicyDocument"]
    grant = next(s for s in service["Statement"] if s["Action"] == "kms:CreateGrant")
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("alias/aws/ebs", "must be a KMS key ARN"),
        ("arn:aws:kms:us-east-1:123456789012:key/abc-1", "the KMS key is in us-east-1"),
    ],
)
def test_bad_key_is_refused_and_nothing_is_created(aws, cli, emr, key, message):
    result = cli("create-security-configuration", "--kms-key-arn", key)
    assert result.code == 2
    assert message in result.err
    with pytest.raises(emr.exceptions.ClientError, match="does not exist"):
        emr.describe_security_configuration(Name=DEFAULT_SECURITY_CONFIGURATION)


def test_same_name_with_other_settings_is_refused(aws, cli, emr):
    emr.create_security_configuration(
        Name=DEFAULT_SECURITY_CONFIGURATION,
        SecurityConfiguration=json.dumps({"EncryptionConfiguration": {}}),
    )
    result = cli("create-security-configuration")
    assert result.code == 2
    assert "exists with other settings" in result.err


def test_preflight_fails_on_a_security_configuration_that_does_not_exist(aws, emr):
    from include.infra.preflight import ClusterRequest, check_security_configuration

    request = ClusterRequest(
        region=REGION,
        bucket="b",
        service_role="s",
        instance_profile="i",
        subnet_id="",
        instance_types=(),
        security_configuration=DEFAULT_SECURITY_CONFIGURATION,
    )
    missing = check_security_configuration(emr, request)
    assert missing.ok is False
    assert "create-security-configuration" in missing.fix
    emr.create_security_configuration(
        Name=DEFAULT_SECURITY_CONFIGURATION,
        SecurityConfiguration=json.dumps(build_security_configuration()),
    )
    assert check_security_configuration(emr, request).ok is True
    unset = ClusterRequest.from_overrides({}, region=REGION, bucket="b", install_from_s3_only=False)
    assert check_security_configuration(emr, unset).ok is True


def test_preflight_warns_when_it_may_not_read_the_security_configuration():
    """A denied read is a WARN naming the action to allow, not a crash of the preflight."""
    from botocore.stub import Stubber

    from include.infra.preflight import ClusterRequest, check_security_configuration

    emr = boto3.client("emr", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    request = ClusterRequest.from_overrides(
        {"SecurityConfiguration": "sc"}, region=REGION, bucket="b", install_from_s3_only=False
    )
    with Stubber(emr) as stub:
        stub.add_client_error(
            "describe_security_configuration", service_error_code="AccessDeniedException"
        )
        warning = check_security_configuration(emr, request)
    assert warning.ok is None
    assert warning.fix == "allow elasticmapreduce:DescribeSecurityConfiguration"
