"""The EMR security configuration the clusters name: encryption at rest.

What ``create-security-configuration`` makes (EMR Management Guide, "Specifying Amazon EMR
encryption options using a security configuration"; AWS CLI ``emr create-security-configuration``):

* EMRFS data in S3: SSE-S3, or SSE-KMS with ``--kms-key-arn``. (The project bucket already
  encrypts every object with SSE-S3 by default; the configuration makes EMRFS ask for it too.)
* Local disks (HDFS, shuffle spill, EBS volumes): only with a KMS key. EMR's
  ``LocalDiskEncryptionConfiguration`` has no key-less mode (``EncryptionKeyProviderType`` is
  ``AwsKms`` with ``AwsKmsKey``, or ``Custom`` with a key-provider JAR); without a key the
  CLI says so and points to EC2's account-wide ``enable-ebs-encryption-by-default`` (the
  AWS-managed ``aws/ebs`` key, nothing to create).
* In transit: off. EMR on EC2 needs TLS certificates for it (a PEM zip in S3 or a custom
  provider), which the project does not make.

With a key, the roles get an inline ``fruits-features-kms`` policy on that key only: the
instance role as a key user (EMR Release Guide, "Providing keys for at-rest data
encryption": the instance role must be able to use the key for SSE-KMS and local disks),
the service role what EBS encryption needs (Amazon EBS User Guide, "Requirements for Amazon
EBS encryption": ``kms:CreateGrant`` only with ``kms:GrantIsForAWSResource``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from include.infra.check import error_code
from include.infra.errors import RefusedError

if TYPE_CHECKING:
    from include.infra.aws import AwsContext

DEFAULT_SECURITY_CONFIGURATION = "fruits-features-at-rest"
KMS_POLICY_NAME = "fruits-features-kms"
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


def build_security_configuration(kms_key_arn: str | None = None) -> dict[str, Any]:
    """The security configuration document (a new dict each call)."""
    s3: dict[str, Any] = {"EncryptionMode": "SSE-S3"}
    at_rest: dict[str, Any] = {"S3EncryptionConfiguration": s3}
    if kms_key_arn:
        s3.update(EncryptionMode="SSE-KMS", AwsKmsKey=kms_key_arn)
        at_rest["LocalDiskEncryptionConfiguration"] = {
            "EncryptionKeyProviderType": "AwsKms",
            "AwsKmsKey": kms_key_arn,
            "EnableEbsEncryption": True,
        }
    return {
        "EncryptionConfiguration": {
            "EnableInTransitEncryption": False,
            "EnableAtRestEncryption": True,
            "AtRestEncryptionConfiguration": at_rest,
        }
    }


def kms_role_policies(kms_key_arn: str) -> dict[str, dict[str, Any]]:
    """``{"instance": doc, "service": doc}``: what each role needs of the key, nothing else."""
    instance = {
        "Sid": "UseTheClusterKey",
        "Effect": "Allow",
        "Action": [
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:DescribeKey",
        ],
        "Resource": kms_key_arn,
    }
    service = [
        {
            "Sid": "EncryptTheClusterVolumes",
            "Effect": "Allow",
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncrypt*",
            ],
            "Resource": kms_key_arn,
        },
        {
            "Sid": "GrantOnlyToAwsResources",
            "Effect": "Allow",
            "Action": "kms:CreateGrant",
            "Resource": kms_key_arn,
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]
    version = "2012-10-17"
    return {
        "instance": {"Version": version, "Statement": [instance]},
        "service": {"Version": version, "Statement": service},
    }


def validate_kms_key_arn(kms_key_arn: str, region: str) -> str:
    """A key ARN (not an alias) of the cluster's region: EMR needs the key in its region."""
    if not _KMS_KEY_ARN.match(kms_key_arn):
        raise RefusedError(
            f"--kms-key-arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), "
            f"got {kms_key_arn!r}"
        )
    key_region = kms_key_arn.split(":")[3]
    if key_region != region:
        raise RefusedError(f"the KMS key is in {key_region}, the clusters run in {region}")
    return kms_key_arn


def create_security_configuration(
    ctx: AwsContext,
    *,
    name: str,
    kms_key_arn: str | None,
    service_role: str,
    instance_role: str,
) -> dict[str, Any]:
    """Create the configuration (idempotent: the same document again is a no-op).

    A configuration of that name with another document is refused: EMR cannot update one,
    and clusters may use it. Returns ``{"name", "created", "local_disk", "s3"}``.
    """
    if kms_key_arn:
        validate_kms_key_arn(kms_key_arn, ctx.region)
    document = build_security_configuration(kms_key_arn)
    emr = ctx.client("emr")
    created = True
    try:
        existing = emr.describe_security_configuration(Name=name)["SecurityConfiguration"]
    except ClientError as exc:
        if error_code(exc) not in ("InvalidRequestException", "ResourceNotFoundException"):
            raise
        existing = None
    if existing is not None:
        if json.loads(existing) != document:
            raise RefusedError(
                f"security configuration {name!r} exists with other settings; delete it "
                f"(aws emr delete-security-configuration --name {name}) or pick another --name"
            )
        created = False
    else:
        emr.create_security_configuration(Name=name, SecurityConfiguration=json.dumps(document))
    if kms_key_arn:
        iam = ctx.client("iam")
        policies = kms_role_policies(kms_key_arn)
        for role, kind in ((instance_role, "instance"), (service_role, "service")):
            iam.put_role_policy(
                RoleName=role,
                PolicyName=KMS_POLICY_NAME,
                PolicyDocument=json.dumps(policies[kind]),
            )
    at_rest = document["EncryptionConfiguration"]["AtRestEncryptionConfiguration"]
    return {
        "name": name,
        "created": created,
        "s3": at_rest["S3EncryptionConfiguration"]["EncryptionMode"],
        "local_disk": "LocalDiskEncryptionConfiguration" in at_rest,
    }
