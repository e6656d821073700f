"""cleanup: says what it would delete, refuses without the flag, deletes only the project's."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from include.infra.iam import (
    AIRFLOW_POLICY_NAME,
    DEFAULT_INSTANCE_ROLE,
    DEFAULT_SERVERLESS_JOB_ROLE,
    DEFAULT_SERVICE_ROLE,
)
from tests.include.infra.conftest import BUCKET, REGION, cluster_state, start_cluster


@pytest.fixture
def project(aws_iam, cli, s3, emr):
    """Everything the setup commands create, plus a running cluster and some results."""
    assert cli("create-bucket", "--bucket", BUCKET).code == 0
    assert cli("create-roles", "--bucket", BUCKET).code == 0
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"fruits/results/run/{i}.parquet", Body=b"x")
    return start_cluster(emr)


def _role_names(iam) -> set[str]:
    return {r["RoleName"] for r in iam.list_roles()["Roles"]}


def test_cleanup_without_confirmation_lists_the_plan_and_deletes_nothing(
    project, cli, s3, iam, emr
):
    result = cli("cleanup", "--bucket", BUCKET)
    assert result.code == 2
    assert "refusing to delete anything without --yes-i-am-sure" in result.err
    assert f"terminate cluster {project}" in result.out
    assert f"delete every object in s3://{BUCKET}" in result.out
    assert f"delete IAM {DEFAULT_SERVICE_ROLE}" in result.out
    assert f"delete IAM {DEFAULT_SERVERLESS_JOB_ROLE}" in result.out
    assert f"delete IAM {AIRFLOW_POLICY_NAME}" in result.out
    assert cluster_state(emr, project) == "WAITING"
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 3
    assert {DEFAULT_SERVICE_ROLE, DEFAULT_INSTANCE_ROLE} <= _role_names(iam)


def test_cleanup_with_confirmation_deletes_clusters_bucket_and_roles(project, cli, s3, iam, emr):
    other = start_cluster(emr, project=False)
    result = cli("cleanup", "--bucket", BUCKET, "--yes-i-am-sure")
    assert result.code == 0, result.err
    assert cluster_state(emr, project) == "TERMINATED"
    assert cluster_state(emr, other) == "WAITING"
    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not {DEFAULT_SERVICE_ROLE, DEFAULT_INSTANCE_ROLE, DEFAULT_SERVERLESS_JOB_ROLE} & (
        _role_names(iam)
    )
    with pytest.raises(ClientError, match="NoSuchEntity"):
        iam.get_instance_profile(InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    assert iam.list_policies(Scope="Local")["Policies"] == []
    assert cli("cleanup", "--bucket", BUCKET).out.strip() == "nothing to clean up"


def test_cleanup_can_keep_the_bucket_and_roles(project, cli, s3, iam, emr):
    result = cli("cleanup", "--bucket", BUCKET, "--keep-bucket", "--keep-roles", "--yes-i-am-sure")
    assert result.code == 0, result.err
    assert cluster_state(emr, project) == "TERMINATED"
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 3
    assert DEFAULT_SERVICE_ROLE in _role_names(iam)


def test_cleanup_refuses_a_bucket_it_did_not_create(aws, cli, s3, emr):
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="precious.csv", Body=b"data")
    cluster_id = start_cluster(emr)
    result = cli("cleanup", "--bucket", BUCKET, "--yes-i-am-sure")
    assert result.code == 2
    assert "not tagged Project=fruits-features" in result.err
    # The refusal comes before any deletion: the cluster is still up too.
    assert s3.get_object(Bucket=BUCKET, Key="precious.csv")["Body"].read() == b"data"
    assert cluster_state(emr, cluster_id) == "WAITING"
