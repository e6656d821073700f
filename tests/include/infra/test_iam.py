"""create-roles / print-roles: roles, instance profile and policies checked with plain boto3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.config import PROJECT_TAG, PipelineConfig
from include.infra.iam import (
    AIRFLOW_POLICY_NAME,
    DEFAULT_INSTANCE_ROLE,
    DEFAULT_SERVERLESS_JOB_ROLE,
    DEFAULT_SERVICE_ROLE,
)
from include.infra.policies import POLICY_DIR, POLICY_FILES, render_policy
from tests.include.infra.conftest import ACCOUNT_ID, BUCKET

AIRFLOW_ARN = f"arn:aws:iam::{ACCOUNT_ID}:policy/{AIRFLOW_POLICY_NAME}"
VALUES = {
    "bucket": BUCKET,
    "prefix": "fruits",
    "account_id": ACCOUNT_ID,
    "region": "eu-west-1",
    "partition": "aws",
    "service_role": "svc",
    "instance_role": "ec2",
    "serverless_job_role": "job",
    "project_tag": PROJECT_TAG,
}


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def _resources(statement: dict) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else resource


def _statements(document: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in document["Statement"]}


def _inline(iam, role: str, name: str) -> dict:
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def _tags(tag_list: list[dict]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


def _trust(iam, role: str) -> dict:
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    return json.loads(trust) if isinstance(trust, str) else trust


def _airflow_document(iam) -> dict:
    policy = iam.get_policy(PolicyArn=AIRFLOW_ARN)["Policy"]
    version = iam.get_policy_version(PolicyArn=AIRFLOW_ARN, VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def test_every_shipped_policy_renders_to_json_without_placeholders():
    assert sorted(p.name for p in POLICY_DIR.glob("*.json")) == sorted(POLICY_FILES.values())
    for name in POLICY_FILES:
        document = render_policy(name, **VALUES)
        assert document["Version"] == "2012-10-17"
        assert "${" not in json.dumps(document), name


def test_render_policy_names_a_missing_value():
    values = {k: v for k, v in VALUES.items() if k != "bucket"}
    with pytest.raises(ValueError, match="needs a value for 'bucket'"):
        render_policy("emr-ec2-inline", **values)
    with pytest.raises(ValueError, match="unknown policy"):
        render_policy("nope", **VALUES)


@pytest.mark.parametrize("name", ["emr-ec2-inline", "emr-serverless-job", "airflow-pipeline"])
def test_s3_access_is_scoped_to_the_project_bucket(name):
    document = render_policy(name, **VALUES)
    s3_statements = [
        s for s in document["Statement"] if any(a.startswith("s3:") for a in _actions(s))
    ]
    assert s3_statements
    for statement in s3_statements:
        assert statement["Effect"] == "Allow"
        for resource in _resources(statement):
            assert resource != "*"
            assert resource.startswith(f"arn:aws:s3:::{BUCKET}") or "elasticmapreduce" in resource
            assert "s3:*" not in _actions(statement)
    writes = [s for s in s3_statements if "s3:PutObject" in _actions(s)]
    assert [_resources(s) for s in writes] == [[f"arn:aws:s3:::{BUCKET}/fruits/*"]]


def test_create_roles_creates_scoped_roles_profile_and_policy(aws_iam, cli, iam):
    result = cli("create-roles", "--bucket", BUCKET)
    assert result.code == 0, result.err
    assert f"export FRUITS_EMR_SERVICE_ROLE={DEFAULT_SERVICE_ROLE}" in result.out
    assert f"export FRUITS_EMR_INSTANCE_PROFILE={DEFAULT_INSTANCE_ROLE}" in result.out
    # The pipeline's defaults are the roles create-roles makes (no export needed).
    defaults = PipelineConfig()
    assert (defaults.emr_service_role, defaults.emr_instance_profile) == (
        DEFAULT_SERVICE_ROLE,
        DEFAULT_INSTANCE_ROLE,
    )
    assert "FRUITS_EXTRA_TAGS" not in result.out

    # The EMR service role: trusted by EMR only, in this account; AWS's v2 policy + PassRole.
    service = iam.get_role(RoleName=DEFAULT_SERVICE_ROLE)["Role"]
    trust = service["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "elasticmapreduce.amazonaws.com"}
    assert trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT_ID
    assert _tags(iam.list_role_tags(RoleName=DEFAULT_SERVICE_ROLE)["Tags"]) == {
        "Project": PROJECT_TAG
    }
    attached = iam.list_attached_role_policies(RoleName=DEFAULT_SERVICE_ROLE)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEMRServicePolicy_v2"]
    pass_role = _statements(_inline(iam, DEFAULT_SERVICE_ROLE, "pass-project-instance-role"))
    statement = pass_role["PassOnlyTheProjectInstanceRole"]
    assert _actions(statement) == ["iam:PassRole"]
    assert statement["Resource"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{DEFAULT_INSTANCE_ROLE}"

    # The EC2 instance role + profile: the bucket's prefix, nothing broader.
    instance = iam.get_role(RoleName=DEFAULT_INSTANCE_ROLE)["Role"]
    trust = instance["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    profile = iam.get_instance_profile(InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [DEFAULT_INSTANCE_ROLE]
    assert iam.list_attached_role_policies(RoleName=DEFAULT_INSTANCE_ROLE)["AttachedPolicies"] == []
    inline = _statements(_inline(iam, DEFAULT_INSTANCE_ROLE, "project-bucket-access"))
    objects = inline["ReadWriteTheProjectPrefix"]
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(_actions(objects))
    assert objects["Resource"] == f"arn:aws:s3:::{BUCKET}/fruits/*"
    assert inline["ListTheProjectBucket"]["Resource"] == f"arn:aws:s3:::{BUCKET}"

    # The Airflow identity's policy: only project-tagged clusters may be created or changed.
    policy = iam.get_policy(PolicyArn=AIRFLOW_ARN)["Policy"]
    version = iam.get_policy_version(PolicyArn=AIRFLOW_ARN, VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    airflow = _statements(document)
    create = airflow["CreateOnlyProjectTaggedClusters"]
    assert _actions(create) == ["elasticmapreduce:RunJobFlow"]
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/Project": PROJECT_TAG}}
    change = airflow["ChangeOnlyProjectClusters"]
    assert "elasticmapreduce:TerminateJobFlows" in _actions(change)
    assert change["Condition"] == {"StringEquals": {"aws:ResourceTag/Project": PROJECT_TAG}}
    assert sorted(_resources(airflow["PassOnlyTheProjectEmrRoles"])) == sorted(
        f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        for name in (DEFAULT_SERVICE_ROLE, DEFAULT_INSTANCE_ROLE)
    )


def test_create_roles_is_idempotent_and_updates_the_bucket_scope(aws_iam, cli, iam):
    assert cli("create-roles", "--bucket", BUCKET).code == 0
    for _ in range(5):  # more updates than IAM's 5-version limit
        result = cli("create-roles", "--bucket", "fruits-features-other")
        assert result.code == 0, result.err
    assert "updated" in result.out
    inline = _statements(_inline(iam, DEFAULT_INSTANCE_ROLE, "project-bucket-access"))
    assert (
        inline["ReadWriteTheProjectPrefix"]["Resource"]
        == "arn:aws:s3:::fruits-features-other/fruits/*"
    )
    versions = iam.list_policy_versions(PolicyArn=AIRFLOW_ARN)["Versions"]
    assert len(versions) <= 5
    profile = iam.get_instance_profile(InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    assert len(profile["InstanceProfile"]["Roles"]) == 1


def test_create_roles_refuses_a_role_that_is_not_the_projects(aws_iam, cli, iam):
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="EMR_EC2_DefaultRole", AssumeRolePolicyDocument=trust)
    result = cli("create-roles", "--bucket", BUCKET, "--instance-role", "EMR_EC2_DefaultRole")
    assert result.code == 2
    assert "not tagged Project=fruits-features" in result.err
    # Nothing half-made: the service role was checked first but not created.
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert DEFAULT_SERVICE_ROLE not in names
    assert iam.list_role_policies(RoleName="EMR_EC2_DefaultRole")["PolicyNames"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []


def test_print_roles_prints_the_documents_and_creates_nothing(aws, cli, iam):
    result = cli("print-roles", "--bucket", BUCKET, "--account-id", "210987654321")
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert printed["service_role"]["name"] == DEFAULT_SERVICE_ROLE
    assert printed["service_role"]["managed_policies"] == [
        "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
    ]
    ec2 = printed["instance_role"]["inline_policies"]["project-bucket-access"]
    assert _statements(ec2)["ReadWriteTheProjectPrefix"]["Resource"] == (
        f"arn:aws:s3:::{BUCKET}/fruits/*"
    )
    assert "210987654321" in json.dumps(printed["airflow_policy"])
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []


def test_print_roles_rejects_a_bad_account_id(aws, cli):
    result = cli("print-roles", "--bucket", BUCKET, "--account-id", "12ab")
    assert result.code == 2
    assert "12 digits" in result.err


def test_policy_files_are_plain_json_an_admin_can_read():
    for path in Path(POLICY_DIR).glob("*.json"):
        text = path.read_text()
        assert text.endswith("\n")
        assert '"Version": "2012-10-17"' in text


def test_create_roles_without_the_aws_managed_policy_creates_nothing(aws, cli, iam):
    # The plain `aws` fixture has no AWS-managed policies: the pre-check must catch it.
    result = cli("create-roles", "--bucket", BUCKET)
    assert result.code == 1
    assert "AmazonEMRServicePolicy_v2 not found" in result.err
    assert iam.list_roles()["Roles"] == []


def test_create_roles_failing_half_way_removes_what_it_created(aws_iam, cli, iam, monkeypatch):
    from botocore.exceptions import ClientError

    from include.infra import iam as iam_module

    def fail(*_args, **_kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "CreatePolicy")

    monkeypatch.setattr(iam_module, "_ensure_airflow_policy", fail)
    result = cli("create-roles", "--bucket", BUCKET)
    assert result.code == 1
    assert "AccessDenied" in result.err
    assert iam.list_roles()["Roles"] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []


def test_create_roles_refuses_a_foreign_instance_profile(aws_iam, cli, iam):
    iam.create_instance_profile(InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    result = cli("create-roles", "--bucket", BUCKET)
    assert result.code == 2
    assert "instance profile" in result.err
    assert iam.list_roles()["Roles"] == []


def test_create_roles_creates_the_least_privilege_serverless_job_role(aws_iam, cli, iam):
    result = cli("create-roles", "--bucket", BUCKET)
    assert result.code == 0, result.err
    assert f"serverless job role {DEFAULT_SERVERLESS_JOB_ROLE}: created" in result.out
    assert _tags(iam.list_role_tags(RoleName=DEFAULT_SERVERLESS_JOB_ROLE)["Tags"]) == {
        "Project": PROJECT_TAG
    }

    # Trusted by EMR Serverless only, for this account's applications only.
    (trust,) = _trust(iam, DEFAULT_SERVERLESS_JOB_ROLE)["Statement"]
    assert trust["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {
            "aws:SourceArn": f"arn:aws:emr-serverless:eu-west-1:{ACCOUNT_ID}:/applications/*"
        },
    }

    # The project's prefix and nothing else: no managed policy, no Glue, no wildcard resource.
    assert (
        iam.list_attached_role_policies(RoleName=DEFAULT_SERVERLESS_JOB_ROLE)["AttachedPolicies"]
        == []
    )
    assert iam.list_role_policies(RoleName=DEFAULT_SERVERLESS_JOB_ROLE)["PolicyNames"] == [
        "project-bucket-access"
    ]
    document = _inline(iam, DEFAULT_SERVERLESS_JOB_ROLE, "project-bucket-access")
    statements = _statements(document)
    assert set(statements) == {"ListTheProjectPrefix", "ReadWriteTheProjectPrefix"}
    listing = statements["ListTheProjectPrefix"]
    assert _actions(listing) == ["s3:ListBucket"]
    assert listing["Resource"] == f"arn:aws:s3:::{BUCKET}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["fruits", "fruits/*"]}}
    objects = statements["ReadWriteTheProjectPrefix"]
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(_actions(objects))
    assert objects["Resource"] == f"arn:aws:s3:::{BUCKET}/fruits/*"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all(a.startswith("s3:") and "*" not in a for a in _actions(statement))
        assert all(r.startswith(f"arn:aws:s3:::{BUCKET}") for r in _resources(statement))

    # Run again: updated in place, still one inline policy.
    again = cli("create-roles", "--bucket", "fruits-features-other")
    assert again.code == 0, again.err
    assert f"serverless job role {DEFAULT_SERVERLESS_JOB_ROLE}: updated" in again.out
    moved = _statements(_inline(iam, DEFAULT_SERVERLESS_JOB_ROLE, "project-bucket-access"))
    assert moved["ReadWriteTheProjectPrefix"]["Resource"] == (
        "arn:aws:s3:::fruits-features-other/fruits/*"
    )


def test_the_airflow_policy_may_run_only_project_tagged_serverless_applications(aws_iam, cli, iam):
    assert cli("create-roles", "--bucket", BUCKET).code == 0
    airflow = _statements(_airflow_document(iam))
    apps = f"arn:aws:emr-serverless:eu-west-1:{ACCOUNT_ID}:/applications/*"
    create = airflow["CreateOnlyProjectTaggedServerlessApplications"]
    assert _actions(create) == ["emr-serverless:CreateApplication"]
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/Project": PROJECT_TAG}}
    tag = airflow["TagServerlessOnCreate"]
    assert (_actions(tag), tag["Resource"]) == (["emr-serverless:TagResource"], apps)
    assert tag["Condition"] == {"StringEquals": {"aws:RequestTag/Project": PROJECT_TAG}}
    change = airflow["ChangeOnlyProjectServerlessApplications"]
    assert set(_actions(change)) == {
        f"emr-serverless:{action}"
        for action in (
            "StartApplication",
            "StopApplication",
            "DeleteApplication",
            "StartJobRun",
            "CancelJobRun",
        )
    }
    assert change["Resource"] == apps
    assert change["Condition"] == {"StringEquals": {"aws:ResourceTag/Project": PROJECT_TAG}}
    reads = airflow["ReadServerlessApplications"]
    assert set(_actions(reads)) == {
        "emr-serverless:GetApplication",
        "emr-serverless:GetJobRun",
        "emr-serverless:ListJobRuns",
    }
    assert reads["Resource"] == apps
    assert _actions(airflow["FindServerlessApplications"]) == ["emr-serverless:ListApplications"]
    # Every emr-serverless action the DAG and the sweeper call, and no other.
    granted = {a for s in airflow.values() for a in _actions(s) if a.startswith("emr-serverless:")}
    assert granted == {
        f"emr-serverless:{action}"
        for action in (
            "CreateApplication",
            "StartApplication",
            "StopApplication",
            "DeleteApplication",
            "GetApplication",
            "ListApplications",
            "StartJobRun",
            "GetJobRun",
            "CancelJobRun",
            "ListJobRuns",
            "TagResource",
        )
    }
    # The job role may be passed to EMR Serverless only, and only that role.
    passing = airflow["PassOnlyTheServerlessJobRole"]
    assert _actions(passing) == ["iam:PassRole"]
    assert passing["Resource"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{DEFAULT_SERVERLESS_JOB_ROLE}"
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}
    }
    assert f"arn:aws:iam::{ACCOUNT_ID}:role/{DEFAULT_SERVERLESS_JOB_ROLE}" not in _resources(
        airflow["PassOnlyTheProjectEmrRoles"]
    )
    linked = airflow["CreateTheServerlessServiceLinkedRole"]
    assert _actions(linked) == ["iam:CreateServiceLinkedRole"]
    assert linked["Resource"].endswith(
        "/ops.emr-serverless.amazonaws.com/AWSServiceRoleForAmazonEMRServerless"
    )


def test_print_roles_shows_the_serverless_job_role(aws, cli):
    result = cli(
        "print-roles",
        "--bucket",
        BUCKET,
        "--account-id",
        "210987654321",
        "--serverless-job-role",
        "my-job-role",
    )
    assert result.code == 0, result.err
    job = json.loads(result.out)["serverless_job_role"]
    assert job["name"] == "my-job-role"
    assert job["trust_policy"]["Statement"][0]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": "210987654321"
    }
    document = job["inline_policies"]["project-bucket-access"]
    assert _statements(document)["ReadWriteTheProjectPrefix"]["Resource"] == (
        f"arn:aws:s3:::{BUCKET}/fruits/*"
    )
    airflow = _statements(json.loads(result.out)["airflow_policy"]["document"])
    assert airflow["PassOnlyTheServerlessJobRole"]["Resource"] == (
        "arn:aws:iam::210987654321:role/my-job-role"
    )


def test_the_airflow_policy_fits_in_a_managed_policy():
    """IAM refuses a managed policy over 6,144 characters (whitespace not counted): with the
    longest names the CLI accepts (a 63-character bucket, 64-character role names) the
    rendered document must still fit, or create-roles would fail on a real account."""
    from include.infra.policies import policy_json

    values = {
        **VALUES,
        "bucket": "b" * 63,
        "prefix": "p" * 40,
        "service_role": "s" * 64,
        "instance_role": "i" * 64,
        "serverless_job_role": "j" * 64,
    }
    assert len(policy_json(render_policy("airflow-pipeline", **values))) <= 6144


def test_the_cluster_may_read_write_and_move_feature_cache_entries():
    """The job reads the cache, writes new entries aside and moves them in (copy + delete
    on S3): all under the project prefix that the instance role's policy covers."""
    from fnmatch import fnmatchcase

    config = PipelineConfig(bucket=BUCKET, prefix="fruits")
    key = config.feature_cache_uri.removeprefix(f"s3://{BUCKET}/") + "model=abc/part-x.parquet"
    arn = f"arn:aws:s3:::{BUCKET}/{key}"
    document = render_policy("emr-ec2-inline", **VALUES)
    allowed = {
        action
        for s in document["Statement"]
        if any(fnmatchcase(arn, r) for r in _resources(s))
        for action in _actions(s)
    }
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= allowed
    listing = _statements(document)["ListTheProjectBucket"]
    assert "s3:ListBucket" in _actions(listing)
