"""What an emulated account holds before the pipeline runs: what docs/infra.md sets up.

``python -m include.infra create-bucket`` / ``create-roles`` make a private, encrypted bucket
and the EMR service role + EC2 instance profile (+ the EMR Serverless job runtime role,
trusted by ``emr-serverless.amazonaws.com``); the pipelines' preflights check for them.
:func:`prepare_account` makes the same (idempotently) in the emulator, without the
AWS-managed policies (moto loads those only on request, slowly). Where IAM is enforced,
:func:`install_project_identity` adds the project's own policy documents to those roles and
an IAM user holding only the Airflow policy, whose keys the pipelines then use. The service
role does not carry ``AmazonEMRServicePolicy_v2``, so the v2 network rules
(:mod:`emr_emulator.network`: tagged subnet, VPC, default security groups) do not apply: the
emulated pipelines set no ``FRUITS_SUBNET_ID`` and run in moto's default VPC, as the
preflight's v1 path allows. ``tests/emr_emulator/test_network.py`` sets up a v2 account as
docs/infra.md tells users to.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from include.config import DEFAULT_INSTANCE_ROLE, DEFAULT_SERVERLESS_JOB_ROLE, DEFAULT_SERVICE_ROLE
from include.infra.bucket import make_private_and_encrypted
from include.infra.iam import (
    AIRFLOW_POLICY_NAME,
    INSTANCE_INLINE_POLICY,
    SERVERLESS_INLINE_POLICY,
    SERVICE_INLINE_POLICY,
    RoleSettings,
    render_documents,
)

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


AIRFLOW_USER = "fruits-features-airflow"
"""The IAM user the pipelines run as where IAM is enforced (its keys go in Airflow's connection)."""


def install_project_identity(
    iam: Any,
    *,
    bucket: str,
    prefix: str,
    region: str,
    dataset_uri: str | None = None,
    account_id: str = "123456789012",
) -> dict[str, str]:
    """The project's own IAM documents, as ``python -m include.infra create-roles`` renders them,
    on the roles :func:`prepare_account` made, and an IAM user holding only the Airflow policy.

    The documents are the project's (:func:`include.infra.iam.render_documents`): the emulator
    evaluates them, it does not write them. Returns the user's ``access_key``/``secret_key``.
    """

    settings = RoleSettings(bucket=bucket, prefix=prefix, dataset_uri=dataset_uri)
    ctx = SimpleNamespace(account_id=account_id, region=region, partition="aws")
    docs = render_documents(ctx, settings)  # type: ignore[arg-type]
    for role, name, doc in (
        (settings.service_role, SERVICE_INLINE_POLICY, "emr-service-inline"),
        (settings.instance_role, INSTANCE_INLINE_POLICY, "emr-ec2-inline"),
        (settings.serverless_job_role, SERVERLESS_INLINE_POLICY, "emr-serverless-job"),
    ):
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(docs[doc]))
    _ignore_existing(iam.create_user, UserName=AIRFLOW_USER)
    arn = f"arn:aws:iam::{account_id}:policy/{AIRFLOW_POLICY_NAME}"
    try:
        iam.create_policy(
            PolicyName=AIRFLOW_POLICY_NAME, PolicyDocument=json.dumps(docs["airflow-pipeline"])
        )
    except ClientError as exc:  # already there: this document becomes its default version
        if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise
        iam.create_policy_version(
            PolicyArn=arn, PolicyDocument=json.dumps(docs["airflow-pipeline"]), SetAsDefault=True
        )
    iam.attach_user_policy(UserName=AIRFLOW_USER, PolicyArn=arn)
    key = iam.create_access_key(UserName=AIRFLOW_USER)["AccessKey"]
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
