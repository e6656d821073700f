"""What an emulated account holds before the pipeline runs: what the README's AWS set-up makes.

``python -m include.infra create-bucket`` / ``create-roles`` make a private, encrypted bucket
and the EMR service role + EC2 instance profile (+ the EMR Serverless job runtime role,
trusted by ``emr-serverless.amazonaws.com``); the pipelines' preflights check for them.
:func:`prepare_account` makes the same (idempotently) in the emulator, without the
AWS-managed policies (moto loads those only on request, slowly; the emulator checks no IAM
permission anyway). So the service role does not carry ``AmazonEMRServicePolicy_v2`` and the
v2 network rules (:mod:`emr_emulator.network`: tagged subnet, VPC, default security groups)
do not apply: the emulated pipelines set no ``FRUITS_SUBNET_ID`` and run in moto's default
VPC, as the preflight's v1 path allows. ``tests/emr_emulator/test_network.py`` sets up a v2
account as docs/infra.md tells users to.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from include.config import DEFAULT_INSTANCE_ROLE, DEFAULT_SERVERLESS_JOB_ROLE, DEFAULT_SERVICE_ROLE
from include.infra.bucket import make_private_and_encrypted

SERVERLESS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "emr-serverless.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
"""The job runtime role's trust policy (the Serverless preflight checks it)."""

_EXISTS = {"BucketAlreadyOwnedByYou", "EntityAlreadyExists", "LimitExceeded"}


def _ignore_existing(call: Any, **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _EXISTS:
            raise


def prepare_account(s3: Any, iam: Any, bucket: str, region: str) -> None:
    """A private, SSE-S3 encrypted ``bucket`` (as ``create-bucket`` secures it) and the
    default roles + instance profile."""
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    _ignore_existing(s3.create_bucket, **kwargs)
    make_private_and_encrypted(s3, bucket)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for name in (DEFAULT_SERVICE_ROLE, DEFAULT_INSTANCE_ROLE):
        _ignore_existing(iam.create_role, RoleName=name, AssumeRolePolicyDocument=trust)
    _ignore_existing(
        iam.create_role,
        RoleName=DEFAULT_SERVERLESS_JOB_ROLE,
        AssumeRolePolicyDocument=json.dumps(SERVERLESS_TRUST),
    )
    _ignore_existing(iam.create_instance_profile, InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    profile = iam.get_instance_profile(InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    if not profile["InstanceProfile"]["Roles"]:
        iam.add_role_to_instance_profile(
            InstanceProfileName=DEFAULT_INSTANCE_ROLE, RoleName=DEFAULT_INSTANCE_ROLE
        )
