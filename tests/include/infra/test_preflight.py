"""Preflight in moto: a ready account passes, and each check fails alone with a fix."""

from __future__ import annotations

import json

import boto3
import pytest

from include.config import EMR_MANAGED_POLICY_TAG
from include.infra.aws import AwsContext
from include.infra.iam import RoleSettings, create_roles
from include.infra.preflight import ClusterRequest, failures, run_preflight

REGION = "eu-west-1"
BUCKET = "fruits-preflight"


@pytest.fixture
def account(monkeypatch):
    """A ready account: project roles, a tagged subnet (and VPC: EMR creates its security
    groups there) with an internet route, a bucket."""
    from moto import mock_aws

    # AWS-managed policies (AmazonEMRServicePolicy_v2) exist in moto only when loaded.
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        roles = create_roles(AwsContext(session=session, region=REGION), RoleSettings(BUCKET, "p"))
        ec2 = session.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a"
        )["Subnet"]["SubnetId"]
        ec2.create_tags(
            Resources=[subnet, vpc], Tags=[{"Key": EMR_MANAGED_POLICY_TAG, "Value": "true"}]
        )
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        association = ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        request = ClusterRequest(
            region=REGION,
            bucket=BUCKET,
            service_role=roles["service_role"],
            instance_profile=roles["instance_profile"],
            subnet_id=subnet,
            instance_types=(("m5.xlarge", 1, "ON_DEMAND"), ("m5.xlarge", 2, "ON_DEMAND")),
        )
        yield {
            "session": session,
            "ec2": ec2,
            "s3": s3,
            "request": request,
            "vpc": vpc,
            "igw": igw,
            "table": table,
            "association": association["AssociationId"],
        }


def _by_name(checks):
    return {c.name: c for c in checks}


def _only_failure(account, request=None):
    checks = run_preflight(account["session"].client, request or account["request"])
    failed = failures(checks)
    assert len(failed) == 1, [c.line() for c in checks]
    assert failed[0].fix  # every failure says what to change
    return failed[0]


@pytest.fixture
def ec2_quota(monkeypatch):
    """Give moto's Service Quotas the EC2 vCPU quota AWS has (moto 5.2.5 serves VPC only)."""
    from moto.servicequotas.models import ServiceQuotasBackend

    values: dict[str, float] = {}
    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code, quota_code):
        if service_code == "ec2" and quota_code in values:
            return {"ServiceCode": "ec2", "QuotaCode": quota_code, "Value": values[quota_code]}
        return original(self, service_code, quota_code)

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
    return values


def test_ready_account_passes_and_unknown_quota_is_a_warning(account):
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    assert not failures(list(checks.values())), [c.line() for c in checks.values()]
    assert checks["roles"].ok is True
    assert "AmazonEMRServicePolicy_v2" in checks["roles"].reason
    # moto cannot answer the EC2 quota: said plainly, not passed silently.
    assert checks["on-demand vCPU quota"].ok is None
    assert "could not check quota L-1216C47A" in checks["on-demand vCPU quota"].reason
    assert "12 vCPUs" in checks["on-demand vCPU quota"].reason  # 3 x m5.xlarge (4 vCPUs)


def test_missing_instance_profile_fails(account):
    account["session"].client("iam").remove_role_from_instance_profile(
        InstanceProfileName=account["request"].instance_profile,
        RoleName=account["request"].instance_profile,
    )
    account["session"].client("iam").delete_instance_profile(
        InstanceProfileName=account["request"].instance_profile
    )
    failed = _only_failure(account)
    assert failed.name == "roles"
    assert "instance profile" in failed.reason
    assert "create-roles" in failed.fix


def test_default_emr_roles_that_do_not_exist_fail(account):
    from dataclasses import replace

    request = replace(account["request"], service_role="EMR_DefaultRole")
    checks = run_preflight(account["session"].client, request)
    assert _by_name(checks)["roles"].ok is False
    assert "EMR_DefaultRole" in _by_name(checks)["roles"].reason


def test_untagged_subnet_fails_under_the_v2_policy(account):
    account["ec2"].delete_tags(
        Resources=[account["request"].subnet_id], Tags=[{"Key": EMR_MANAGED_POLICY_TAG}]
    )
    failed = _only_failure(account)
    assert failed.name == "subnet"
    assert f"lacks the tag {EMR_MANAGED_POLICY_TAG}=true" in failed.reason
    subnet = account["request"].subnet_id
    assert failed.fix == (
        f"aws ec2 create-tags --region {REGION} --resources {subnet} "
        f"--tags Key={EMR_MANAGED_POLICY_TAG},Value=true"
    )


def _untag(account, *resources):
    account["ec2"].delete_tags(Resources=list(resources), Tags=[{"Key": EMR_MANAGED_POLICY_TAG}])


def _emr_group(account, name, *, tagged):
    group = account["ec2"].create_security_group(
        GroupName=name, Description=name, VpcId=account["vpc"]
    )["GroupId"]
    if tagged:
        account["ec2"].create_tags(
            Resources=[group], Tags=[{"Key": EMR_MANAGED_POLICY_TAG, "Value": "true"}]
        )
    return group


def test_untagged_vpc_fails_when_emr_must_create_its_groups(account):
    _untag(account, account["vpc"])
    failed = _only_failure(account)
    assert failed.name == "vpc and security groups"
    assert f"VPC {account['vpc']} (EMR must create ElasticMapReduce-master" in failed.reason
    assert failed.fix.startswith(
        f"aws ec2 create-tags --region {REGION} --resources {account['vpc']}"
    )


def test_untagged_existing_default_group_fails(account):
    master = _emr_group(account, "ElasticMapReduce-master", tagged=True)
    slave = _emr_group(account, "ElasticMapReduce-slave", tagged=False)
    failed = _only_failure(account)
    assert failed.name == "vpc and security groups"
    assert f"security group(s) {slave} lack(s) the tag" in failed.reason
    assert f"--resources {slave} --tags" in failed.fix
    assert master not in failed.fix


def test_existing_tagged_groups_need_no_vpc_tag(account):
    """AWS tags the VPC only "if you want Amazon EMR to create security groups"."""
    _emr_group(account, "ElasticMapReduce-master", tagged=True)
    _emr_group(account, "ElasticMapReduce-slave", tagged=True)
    _untag(account, account["vpc"])
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    assert checks["vpc and security groups"].ok is True, checks["vpc and security groups"].line()


def test_private_subnet_uses_the_private_default_groups(account):
    """Without an internet gateway route EMR uses (or creates) ElasticMapReduce-Master-Private,
    -Slave-Private and -ServiceAccess: the public groups do not count, those do."""
    account["ec2"].disassociate_route_table(AssociationId=account["association"])
    _emr_group(account, "ElasticMapReduce-master", tagged=False)  # a public subnet's: unused
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    assert checks["vpc and security groups"].ok is True, checks["vpc and security groups"].line()
    service = _emr_group(account, "ElasticMapReduce-ServiceAccess", tagged=False)
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    assert checks["vpc and security groups"].ok is False
    assert f"security group(s) {service} lack(s)" in checks["vpc and security groups"].reason


def test_named_untagged_group_fails(account):
    from dataclasses import replace

    mine = _emr_group(account, "mine", tagged=False)
    request = replace(
        account["request"], security_groups=(("AdditionalMasterSecurityGroups", mine),)
    )
    failed = _only_failure(account, request)
    assert f"security group(s) {mine}" in failed.reason


def test_cleanup_role_missing_is_a_warning_and_present_passes(account):
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    warning = checks["cleanup service-linked role"]
    assert warning.ok is None
    assert "iam:CreateServiceLinkedRole" in warning.reason
    assert "aws iam create-service-linked-role --aws-service-name elasticmapreduce" in warning.fix
    # What create-service-linked-role makes in AWS (moto 5.2.5 names EMR's role otherwise).
    account["session"].client("iam").create_role(
        RoleName="AWSServiceRoleForEMRCleanup",
        Path="/aws-service-role/elasticmapreduce.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps({"Statement": []}),
    )
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    assert checks["cleanup service-linked role"].ok is True


def test_no_subnet_under_the_v2_policy_fails(account):
    from dataclasses import replace

    checks = run_preflight(account["session"].client, replace(account["request"], subnet_id=""))
    assert _by_name(checks)["subnet"].ok is False
    assert "FRUITS_SUBNET_ID" in _by_name(checks)["subnet"].fix


def test_unknown_subnet_fails(account):
    from dataclasses import replace

    checks = run_preflight(
        account["session"].client, replace(account["request"], subnet_id="subnet-0000000000")
    )
    assert _by_name(checks)["subnet"].ok is False
    assert "does not exist" in _by_name(checks)["subnet"].reason


def test_instance_type_not_offered_in_the_az_fails(account):
    from dataclasses import replace

    request = replace(account["request"], instance_types=(("m5.nonexistent", 1, "ON_DEMAND"),))
    ec2 = account["ec2"]
    offered = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "location", "Values": [f"{REGION}a"]}],
    )["InstanceTypeOfferings"]
    assert offered  # moto knows the zone's offerings; the made-up type is not among them
    from include.infra.preflight import check_instance_types

    check = check_instance_types(ec2, request)
    assert check.ok is False
    assert f"m5.nonexistent not offered in {REGION}a" in check.reason


def test_vcpu_quota_covers_or_not(account, ec2_quota):
    ec2_quota["L-1216C47A"] = 12.0
    checks = _by_name(run_preflight(account["session"].client, account["request"]))
    assert checks["on-demand vCPU quota"].ok is True
    ec2_quota["L-1216C47A"] = 8.0
    failed = _only_failure(account)
    assert failed.name == "on-demand vCPU quota"
    assert "needs 12 vCPUs, the quota L-1216C47A is 8" in failed.reason


def test_spot_nodes_count_against_the_spot_quota(account, ec2_quota):
    from dataclasses import replace

    ec2_quota["L-1216C47A"] = 100.0
    ec2_quota["L-34B43A08"] = 4.0
    request = replace(
        account["request"],
        instance_types=(("m5.xlarge", 1, "ON_DEMAND"), ("m5.xlarge", 2, "SPOT")),
    )
    failed = _only_failure(account, request)
    assert failed.name == "spot vCPU quota"
    assert "needs 8 vCPUs" in failed.reason


def test_bucket_missing_unencrypted_or_elsewhere_fails(account):
    from dataclasses import replace

    missing = _only_failure(account, replace(account["request"], bucket="fruits-nope"))
    assert missing.name == "bucket"
    assert "not found" in missing.reason

    account["s3"].delete_bucket_encryption(Bucket=BUCKET)
    unencrypted = _only_failure(account)
    assert "no default encryption" in unencrypted.reason

    boto3.client("s3", region_name="eu-central-1").create_bucket(
        Bucket="fruits-frankfurt",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    elsewhere = _by_name(
        run_preflight(
            account["session"].client, replace(account["request"], bucket="fruits-frankfurt")
        )
    )["bucket"]
    assert elsewhere.ok is False
    assert "is in eu-central-1" in elsewhere.reason


def test_private_subnet_without_nat_cannot_reach_pypi(account):
    ec2 = account["ec2"]
    ec2.delete_route(RouteTableId=account["table"], DestinationCidrBlock="0.0.0.0/0")
    failed = _only_failure(account)
    assert failed.name == "network"
    assert "cannot reach PyPI" in failed.reason


def test_s3_gateway_endpoint_is_enough_for_the_wheelhouse(account):
    from dataclasses import replace

    ec2 = account["ec2"]
    ec2.delete_route(RouteTableId=account["table"], DestinationCidrBlock="0.0.0.0/0")
    offline = replace(account["request"], install_from_s3_only=True)
    failed = _only_failure(account, offline)
    assert "no route to S3" in failed.reason
    ec2.create_vpc_endpoint(
        VpcId=account["vpc"],
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[account["table"]],
    )
    checks = _by_name(run_preflight(account["session"].client, offline))
    assert checks["network"].ok is True
    assert "reaches S3 via vpce-" in checks["network"].reason


def test_cli_preflight_exits_1_with_reasons_then_0_once_ready(aws, cli, monkeypatch):
    """``python -m include.infra preflight``: an empty account fails with one line per
    problem; after the account is prepared (no subnet, v1-style roles) it passes."""
    from tests.emr_fakes import prepare_account
    from tests.include.infra.conftest import BUCKET as CLI_BUCKET

    monkeypatch.setenv("FRUITS_BUCKET", CLI_BUCKET)
    monkeypatch.delenv("FRUITS_SUBNET_ID", raising=False)
    empty = cli("preflight")
    assert empty.code == 1, empty.err
    assert "FAIL roles: service role 'fruits-features-emr-service'" in empty.out
    assert "FAIL bucket:" in empty.out
    assert "-> run `python -m include.infra create-bucket`" in empty.out

    prepare_account(CLI_BUCKET, REGION)
    ready = cli("preflight", "--core-nodes", "3", "--json")
    assert ready.code == 0, ready.out
    # Airflow's logging (imported with the Params) may put a botocore line first.
    body = ready.out[ready.out.index("[\n") :]
    checks = {c["name"]: c for c in json.loads(body)}
    assert checks["on-demand vCPU quota"]["ok"] is None  # moto: could not check
    assert "16 vCPUs" in checks["on-demand vCPU quota"]["reason"]  # (1 + 3) x 4


def test_serverless_preflight_checks_the_job_role_trust_and_the_bucket(monkeypatch):
    """The job role create-roles makes passes (by name or ARN); a missing one, or one EMR
    Serverless may not assume, fails with a fix; so does a missing bucket. No managed
    policies are needed here (nothing attaches one), which keeps this test fast."""
    from dataclasses import replace

    from moto import mock_aws

    from include.config import DEFAULT_SERVERLESS_JOB_ROLE
    from include.infra.iam import render_documents
    from include.infra.policies import policy_json
    from include.infra.preflight import ServerlessRequest, preflight_serverless

    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        ctx = AwsContext(session=session, region=REGION)
        iam, s3 = session.client("iam"), session.client("s3")
        docs = render_documents(ctx, RoleSettings(BUCKET, "p"))
        arn = iam.create_role(
            RoleName=DEFAULT_SERVERLESS_JOB_ROLE,
            AssumeRolePolicyDocument=policy_json(docs["emr-serverless-trust"]),
        )["Role"]["Arn"]
        iam.create_role(
            RoleName="ec2-only", AssumeRolePolicyDocument=policy_json(docs["emr-ec2-trust"])
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        request = ServerlessRequest(region=REGION, bucket=BUCKET, job_role=arn)

        checks = _by_name(preflight_serverless(session.client, request))
        assert list(checks) == ["serverless job role", "bucket"]
        assert not failures(list(checks.values())), [c.line() for c in checks.values()]
        assert checks["serverless job role"].reason == (
            f"{DEFAULT_SERVERLESS_JOB_ROLE}: assumable by emr-serverless.amazonaws.com, "
            f"only for account {ctx.account_id}"
        )

        def only_failure(req):
            failed = failures(preflight_serverless(session.client, req))
            assert len(failed) == 1, [c.line() for c in failed]
            assert failed[0].fix
            return failed[0]

        missing = only_failure(replace(request, job_role="nope"))
        assert (missing.name, missing.reason) == ("serverless job role", "role 'nope' not found")
        assert "create-roles" in missing.fix
        wrong = only_failure(replace(request, job_role="ec2-only"))
        assert "cannot be assumed by emr-serverless.amazonaws.com" in wrong.reason
        no_bucket = only_failure(replace(request, bucket="fruits-nope"))
        assert no_bucket.name == "bucket"


def test_cli_serverless_preflight_fails_on_an_empty_account(aws, cli):
    result = cli("preflight", "--serverless", "--bucket", "fruits-features-nope")
    assert result.code == 1, result.err
    assert "FAIL serverless job role: role 'fruits-features-emr-serverless-job' not found" in (
        result.out
    )
    assert "FAIL bucket:" in result.out


def test_network_tags_warn_when_the_groups_may_not_be_read():
    from botocore.stub import Stubber

    from include.infra.network_checks import check_network_tags

    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    request = ClusterRequest(
        region=REGION,
        bucket=BUCKET,
        service_role="s",
        instance_profile="i",
        subnet_id="subnet-1",
        instance_types=(),
    )
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_subnets", {"Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-1"}]}
        )
        for _ in range(2):  # the subnet's own route table, then the VPC's main one
            stub.add_response("describe_route_tables", {"RouteTables": []})
        stub.add_client_error("describe_security_groups", "UnauthorizedOperation")
        warning = check_network_tags(ec2, request, v2_policy=True)
    assert warning.ok is None
    assert "ec2:DescribeSecurityGroups" in warning.fix
