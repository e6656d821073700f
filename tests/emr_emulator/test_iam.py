"""IAM enforced in the emulator: what the Airflow identity may and may not do, at the API level.

The identity holds only the policy ``python -m include.infra create-roles`` renders for Airflow
(``include/infra/policies/airflow-pipeline.json``, installed by
:func:`emr_emulator.account.install_project_identity`); the roles carry the project's own
documents. Each call is a plain boto3 call as that identity; the account's root (the
emulator's set-up keys) makes what belongs to someone else.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emr_emulator.account import install_project_identity, prepare_account
from emr_emulator.iam.requests import Check, request_tags
from include.config import (
    DEFAULT_INSTANCE_ROLE,
    DEFAULT_SERVERLESS_JOB_ROLE,
    DEFAULT_SERVICE_ROLE,
    PROJECT_TAG,
)
from tests.emr_emulator.test_emulator import step_status, wait_for

pytestmark = pytest.mark.enforce_iam

BUCKET = "fruits-features-iam"
PREFIX = "fruits"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/fruits-features-airflow"
TAGS = [{"Key": "Project", "Value": PROJECT_TAG}]
CLEANUP_ROLE = "AWSServiceRoleForEMRCleanup"


class Account:
    """The emulated account: ``root(service)`` and ``airflow(service)`` clients."""

    def __init__(self, emulator: Any, keys: dict[str, str]) -> None:
        self.emulator = emulator
        self.keys = keys

    def root(self, service: str) -> Any:
        return self.emulator.client(service)

    def airflow(self, service: str) -> Any:
        return self.emulator.client(service, self.keys["access_key"], self.keys["secret_key"])


@pytest.fixture
def account(emr_emulator, monkeypatch) -> Account:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    iam = emr_emulator.client("iam")
    prepare_account(emr_emulator.s3_client(), iam, BUCKET, REGION)
    keys = install_project_identity(iam, bucket=BUCKET, prefix=PREFIX, region=REGION)
    return Account(emr_emulator, keys)


def cluster_request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Name": "iam-test",
        "ReleaseLabel": "emr-7.12.0",
        "Instances": {
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        "JobFlowRole": DEFAULT_INSTANCE_ROLE,
        "ServiceRole": DEFAULT_SERVICE_ROLE,
        "Tags": TAGS,
    }
    request.update(overrides)
    return request


def denied(call: Any, action: str, resource: str | None = None) -> str:
    """Run ``call``; assert AWS's denial of ``action`` (on ``resource``) and return its message."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] in ("AccessDenied", "AccessDeniedException"), error
    message = error.get("Message", "")
    assert message.startswith(f"User: {USER_ARN} is not authorized to perform: {action}")
    if resource is not None:
        assert f"on resource: {resource}" in message or f'on resource: "{resource}"' in message
    assert message.endswith(f"because no identity-based policy allows the {action} action")
    return message


def role_names(account: Account) -> set[str]:
    return {r["RoleName"] for r in account.root("iam").list_roles()["Roles"]}


# ---------------------------------------------------------------------------- EMR on EC2


def test_the_first_cluster_of_an_account_creates_the_emr_cleanup_role(account):
    assert CLEANUP_ROLE not in role_names(account)
    emr = account.airflow("emr")
    cluster_id = emr.run_job_flow(**cluster_request())["JobFlowId"]
    assert emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Id"] == cluster_id
    role = account.root("iam").get_role(RoleName=CLEANUP_ROLE)["Role"]
    assert role["Path"] == "/aws-service-role/elasticmapreduce.amazonaws.com/"


def test_without_the_service_linked_role_grant_the_first_cluster_is_refused(account):
    iam = account.root("iam")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/fruits-features-airflow-pipeline"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
    statements = [
        s
        for s in document["Document"]["Statement"]
        if s["Sid"] != "CreateTheEmrCleanupServiceLinkedRole"
    ]
    iam.create_policy_version(
        PolicyArn=arn,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        SetAsDefault=True,
    )
    emr = account.airflow("emr")
    denied(
        lambda: emr.run_job_flow(**cluster_request()),
        "iam:CreateServiceLinkedRole",
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/elasticmapreduce.amazonaws.com/{CLEANUP_ROLE}",
    )
    assert account.root("emr").list_clusters()["Clusters"] == []
    assert CLEANUP_ROLE not in role_names(account)
    # Once the role exists (created by an administrator), the same identity may create clusters.
    account.root("emr").run_job_flow(**cluster_request())
    assert emr.run_job_flow(**cluster_request())["JobFlowId"]


def test_clusters_only_with_the_project_tag_and_the_project_roles(account):
    emr = account.airflow("emr")
    denied(lambda: emr.run_job_flow(**cluster_request(Tags=[])), "elasticmapreduce:RunJobFlow")
    other = [{"Key": "Project", "Value": "someone-else"}]
    denied(lambda: emr.run_job_flow(**cluster_request(Tags=other)), "elasticmapreduce:RunJobFlow")
    iam = account.root("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="admin-role", AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName="admin-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="admin-profile", RoleName="admin-role")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/admin-role"
    denied(
        lambda: emr.run_job_flow(**cluster_request(ServiceRole="admin-role")),
        "iam:PassRole",
        role_arn,
    )
    denied(
        lambda: emr.run_job_flow(**cluster_request(JobFlowRole="admin-profile")),
        "iam:PassRole",
        role_arn,
    )
    assert account.root("emr").list_clusters()["Clusters"] == []


def test_a_foreign_cluster_can_be_read_but_not_changed_or_tagged(account):
    foreign = account.root("emr").run_job_flow(**cluster_request(Tags=[]))["JobFlowId"]
    emr = account.airflow("emr")
    arn = f"arn:aws:elasticmapreduce:{REGION}:{ACCOUNT}:cluster/{foreign}"
    assert emr.describe_cluster(ClusterId=foreign)["Cluster"]["Id"] == foreign
    step = {
        "Name": "x",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "x.py"]},
    }
    denied(
        lambda: emr.add_job_flow_steps(JobFlowId=foreign, Steps=[step]),
        "elasticmapreduce:AddJobFlowSteps",
        arn,
    )
    denied(
        lambda: emr.terminate_job_flows(JobFlowIds=[foreign]),
        "elasticmapreduce:TerminateJobFlows",
        arn,
    )
    # Tagging it as the project's would open the two calls above: no tagging at all.
    denied(lambda: emr.add_tags(ResourceId=foreign, Tags=TAGS), "elasticmapreduce:AddTags", arn)
    assert account.root("emr").describe_cluster(ClusterId=foreign)["Cluster"]["Tags"] == []
    # The project's own cluster: steps and terminate allowed.
    own = emr.run_job_flow(**cluster_request())["JobFlowId"]
    emr.terminate_job_flows(JobFlowIds=[own])


def test_a_step_reading_outside_its_grant_fails_with_s3_access_denied(account):
    """The job's own S3 traffic runs as the instance profile's role (as EMRFS does)."""
    s3 = account.root("s3")
    s3.create_bucket(Bucket="other-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="other-data", Key="images/a.jpg", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/job.py", Body=b"print('hi')")
    emr = account.airflow("emr")
    cluster_id = emr.run_job_flow(**cluster_request())["JobFlowId"]
    args = ["spark-submit", f"s3://{BUCKET}/{PREFIX}/job.py", "--input", "s3://other-data/images/"]
    step = {
        "Name": "read",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }
    (step_id,) = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])["StepIds"]
    wait_for(lambda: step_status(emr, cluster_id, step_id)["State"] == "FAILED", what="FAILED")
    message = step_status(emr, cluster_id, step_id)["FailureDetails"]["Message"]
    role = f"arn:aws:sts::{ACCOUNT}:assumed-role/{DEFAULT_INSTANCE_ROLE}/"
    assert "AccessDenied" in message
    assert role in message
    assert 's3:ListBucket on resource: "arn:aws:s3:::other-data"' in message


# ---------------------------------------------------------------------------- EMR Serverless


def application(client: Any, **tags: str) -> str:
    request: dict[str, Any] = {"name": "app", "releaseLabel": "emr-7.12.0", "type": "SPARK"}
    if tags:
        request["tags"] = tags
    return client.create_application(**request)["applicationId"]


def test_serverless_only_project_applications_and_the_job_role(account):
    serverless = account.airflow("emr-serverless")
    denied(lambda: application(serverless), "emr-serverless:CreateApplication")
    own = application(serverless, Project=PROJECT_TAG)
    foreign = application(account.root("emr-serverless"))
    apps = f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications"
    assert serverless.get_application(applicationId=foreign)["application"]["applicationId"]
    denied(
        lambda: serverless.stop_application(applicationId=foreign),
        "emr-serverless:StopApplication",
        f"{apps}/{foreign}",
    )
    denied(
        lambda: serverless.delete_application(applicationId=foreign),
        "emr-serverless:DeleteApplication",
        f"{apps}/{foreign}",
    )
    driver = {"sparkSubmit": {"entryPoint": f"s3://{BUCKET}/{PREFIX}/job.py"}}
    denied(
        lambda: serverless.start_job_run(
            applicationId=foreign,
            executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{DEFAULT_SERVERLESS_JOB_ROLE}",
            jobDriver=driver,
            tags={"Project": PROJECT_TAG},
        ),
        "emr-serverless:StartJobRun",
        f"{apps}/{foreign}",
    )
    other_role = f"arn:aws:iam::{ACCOUNT}:role/{DEFAULT_SERVICE_ROLE}"
    denied(
        lambda: serverless.start_job_run(
            applicationId=own,
            executionRoleArn=other_role,
            jobDriver=driver,
            tags={"Project": PROJECT_TAG},
        ),
        "iam:PassRole",
        other_role,
    )


def test_a_job_run_reading_outside_its_grant_fails_with_s3_access_denied(account, emr_emulator):
    """A Serverless job's own S3 traffic runs as its job runtime role."""
    emr_emulator.settings.app_create_s = 0.1
    emr_emulator.settings.job_queue_s = 0.05
    s3 = account.root("s3")
    s3.create_bucket(Bucket="other-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="other-data", Key="images/a.jpg", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/job.py", Body=b"print('hi')")
    serverless = account.airflow("emr-serverless")
    app = application(serverless, Project=PROJECT_TAG)
    run_id = serverless.start_job_run(
        applicationId=app,
        executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{DEFAULT_SERVERLESS_JOB_ROLE}",
        jobDriver={
            "sparkSubmit": {
                "entryPoint": f"s3://{BUCKET}/{PREFIX}/job.py",
                "entryPointArguments": ["--input", "s3://other-data/images/"],
            }
        },
        tags={"Project": PROJECT_TAG},
    )["jobRunId"]

    def run() -> dict[str, Any]:
        return serverless.get_job_run(applicationId=app, jobRunId=run_id)["jobRun"]

    wait_for(lambda: run()["state"] == "FAILED", what="FAILED")
    details = run()["stateDetails"]
    role = f"arn:aws:sts::{ACCOUNT}:assumed-role/{DEFAULT_SERVERLESS_JOB_ROLE}/"
    assert "AccessDenied" in details
    assert role in details


def test_serverless_residual_risk_tag_resource_cannot_be_limited_to_creation(account):
    """docs/infra.md: CreateApplication with tags needs emr-serverless:TagResource (Service
    Authorization Reference), and no condition key tells creation from a later TagResource."""
    foreign = application(account.root("emr-serverless"))
    serverless = account.airflow("emr-serverless")
    arn = f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications/{foreign}"
    denied(
        lambda: serverless.tag_resource(resourceArn=arn, tags={"Owner": "me"}),
        "emr-serverless:TagResource",
        arn,
    )
    # moto 5.2.5 has no TagResource route: the decision is read from the enforcer itself.
    enforcer = account.emulator.iam
    caller = enforcer.caller(account.keys["access_key"], {})
    project = [Check("emr-serverless:TagResource", arn, request_tags({"Project": PROJECT_TAG}))]
    assert enforcer.decide(caller, project) is None  # allowed: the residual risk
    from moto.emrserverless.models import emrserverless_backends

    emrserverless_backends[ACCOUNT][REGION].applications[foreign].tags = {"Project": PROJECT_TAG}
    state = lambda: serverless.get_application(applicationId=foreign)["application"]["state"]  # noqa: E731
    wait_for(lambda: state() == "CREATED", what="CREATED")
    serverless.delete_application(applicationId=foreign)  # now the identity's to delete
    assert state() == "TERMINATED"


# ---------------------------------------------------------------------------- S3, IAM


def test_s3_only_the_project_prefix(account):
    s3 = account.airflow("s3")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/a.txt", Body=b"a")
    assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/a.txt")["Body"].read() == b"a"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")["Contents"]
    assert [o["Key"] for o in listed] == [f"{PREFIX}/a.txt"]
    account.root("s3").put_object(Bucket=BUCKET, Key="private/b.txt", Body=b"b")
    denied(
        lambda: s3.get_object(Bucket=BUCKET, Key="private/b.txt"),
        "s3:GetObject",
        f"arn:aws:s3:::{BUCKET}/private/b.txt",
    )
    denied(
        lambda: s3.put_object(Bucket=BUCKET, Key="private/c.txt", Body=b"c"),
        "s3:PutObject",
        f"arn:aws:s3:::{BUCKET}/private/c.txt",
    )
    denied(
        lambda: s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "private/b.txt"}]}),
        "s3:DeleteObject",
        f"arn:aws:s3:::{BUCKET}/private/b.txt",
    )
    account.root("s3").create_bucket(
        Bucket="someone-else", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    denied(
        lambda: s3.list_objects_v2(Bucket="someone-else"),
        "s3:ListBucket",
        "arn:aws:s3:::someone-else",
    )
    assert account.emulator.iam.denied  # the emulator keeps every denial for inspection


def test_iam_reads_only_the_project_roles(account):
    iam = account.airflow("iam")
    assert iam.get_role(RoleName=DEFAULT_SERVICE_ROLE)["Role"]["RoleName"] == DEFAULT_SERVICE_ROLE
    profile = iam.get_instance_profile(InstanceProfileName=DEFAULT_INSTANCE_ROLE)
    assert profile["InstanceProfile"]["Roles"][0]["RoleName"] == DEFAULT_INSTANCE_ROLE
    denied(
        lambda: iam.create_role(RoleName="mine", AssumeRolePolicyDocument="{}"),
        "iam:CreateRole",
        f"arn:aws:iam::{ACCOUNT}:role/mine",
    )
    denied(
        lambda: iam.create_service_linked_role(AWSServiceName="rds.amazonaws.com"),
        "iam:CreateServiceLinkedRole",
    )


def test_the_account_root_is_not_restricted(account):
    """The emulator's own set-up keys act as the account's root (IAM policies do not apply)."""
    account.root("s3").put_object(Bucket=BUCKET, Key="anywhere/x", Body=b"x")
    account.root("iam").create_role(RoleName="by-root", AssumeRolePolicyDocument="{}")
    assert "by-root" in role_names(account)


def test_the_preflight_reads_everything_it_checks_as_the_airflow_identity(account):
    """Every read of the cluster preflight (roles, the cleanup role, network tags, instance
    types, quotas, the bucket, the security configuration) is allowed by the Airflow policy:
    a denied read would only WARN, so a missing grant would pass unnoticed."""
    from include.infra.preflight import ClusterRequest, run_preflight

    root_ec2 = account.root("ec2")
    vpc = root_ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    subnet = root_ec2.create_subnet(VpcId=vpc, CidrBlock="10.2.1.0/24")["Subnet"]["SubnetId"]
    root_ec2.create_tags(
        Resources=[vpc, subnet],
        Tags=[{"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}],
    )
    account.root("emr").create_security_configuration(
        Name="fruits-at-rest",
        SecurityConfiguration=json.dumps(
            {
                "EncryptionConfiguration": {
                    "EnableInTransitEncryption": False,
                    "EnableAtRestEncryption": True,
                    "AtRestEncryptionConfiguration": {
                        "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"}
                    },
                }
            }
        ),
    )
    request = ClusterRequest(
        region=REGION,
        bucket=BUCKET,
        service_role=DEFAULT_SERVICE_ROLE,
        instance_profile=DEFAULT_INSTANCE_ROLE,
        subnet_id=subnet,
        instance_types=(("m5.xlarge", 1, "ON_DEMAND"), ("m5.xlarge", 2, "ON_DEMAND")),
        security_configuration="fruits-at-rest",
    )

    checks = run_preflight(account.airflow, request)

    from include.infra.check import DENIED

    assert [c.line() for c in checks if any(f"({code})" in c.reason for code in DENIED)] == []
    assert not account.emulator.iam.denied, account.emulator.iam.denied
    by_name = {c.name: c for c in checks}
    assert by_name["security configuration"].ok is True
