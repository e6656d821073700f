"""The emulator enforces what AmazonEMRServicePolicy_v2 needs of the network at RunJobFlow.

Each test builds an account through boto3 against the emulator (a service role with the v2
policy attached, a VPC, a subnet, maybe EMR's default security groups), starts a cluster
and reads its end state through DescribeCluster, as the DAG would.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.emr_emulator.test_emulator import client_kwargs, start_cluster, states_seen, status

V2 = "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
TAG = {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}
ROLE = "EMR_DefaultRole_V2"


@pytest.fixture
def account(emr_emulator, monkeypatch) -> dict[str, Any]:
    """Clients of the emulator and a v2 service role (moto loads AWS-managed policies only
    when asked; its IAM backend is made at the first IAM request, after this env var)."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    kwargs = client_kwargs(emr_emulator)
    iam = boto3.client("iam", **kwargs)
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=V2)
    return {"ec2": boto3.client("ec2", **kwargs), "emr": boto3.client("emr", **kwargs)}


PUBLIC_GROUPS = ("ElasticMapReduce-master", "ElasticMapReduce-slave")


def _network(
    ec2, *, subnet: bool, vpc: bool, groups: bool | None, public: bool = True
) -> tuple[str, str]:
    """A VPC and a subnet (public: routed through an internet gateway), tagged as asked;
    ``groups``: EMR's default groups of a public subnet exist (tagged if True, untagged if
    False) or not (None)."""
    vpc_id = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    if public:
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
        table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
    tagged = [r for r, yes in ((vpc_id, vpc), (subnet_id, subnet)) if yes]
    if groups is not None:
        for name in PUBLIC_GROUPS:
            group = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)
            if groups:
                tagged.append(group["GroupId"])
    if tagged:
        ec2.create_tags(Resources=tagged, Tags=[TAG])
    return vpc_id, subnet_id


def _run(emr, subnet_id: str, **instances: Any) -> str:
    return start_cluster(
        emr,
        ServiceRole=ROLE,
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
            "Ec2SubnetId": subnet_id,
            **instances,
        },
    )


def _insufficient(emr, cluster_id: str) -> None:
    states_seen(emr, cluster_id, ("TERMINATED_WITH_ERRORS", "WAITING"))
    got = status(emr, cluster_id)
    assert got["State"] == "TERMINATED_WITH_ERRORS"
    assert got["StateChangeReason"] == {
        "Code": "VALIDATION_ERROR",
        "Message": f"Service role arn:aws:iam::123456789012:role/{ROLE} has insufficient "
        "EC2 permissions",
    }


@pytest.mark.parametrize("groups", [None, True], ids=["emr-creates-groups", "tagged-groups"])
def test_tagged_network_starts(account, groups):
    _, subnet = _network(account["ec2"], subnet=True, vpc=True, groups=groups)
    cluster = _run(account["emr"], subnet)
    assert states_seen(account["emr"], cluster, ("WAITING", "TERMINATED_WITH_ERRORS"))[-1] == (
        "WAITING"
    )


@pytest.mark.parametrize(
    ("subnet", "vpc", "groups"),
    [
        (False, True, None),  # the subnet: CreateInTaggedNetwork
        (True, False, None),  # the VPC, where EMR must create its groups
        (True, True, False),  # existing default groups: CreateInTaggedNetwork
    ],
    ids=["untagged-subnet", "untagged-vpc", "untagged-default-groups"],
)
def test_untagged_network_ends_with_validation_error(account, subnet, vpc, groups):
    _, subnet_id = _network(account["ec2"], subnet=subnet, vpc=vpc, groups=groups)
    _insufficient(account["emr"], _run(account["emr"], subnet_id))


def test_existing_tagged_groups_need_no_vpc_tag(account):
    """AWS: the VPC needs the tag only "if you want Amazon EMR to create security groups"."""
    _, subnet = _network(account["ec2"], subnet=True, vpc=False, groups=True)
    cluster = _run(account["emr"], subnet)
    assert states_seen(account["emr"], cluster, ("WAITING", "TERMINATED_WITH_ERRORS"))[-1] == (
        "WAITING"
    )


def test_named_untagged_group_ends_with_validation_error(account):
    ec2 = account["ec2"]
    vpc, subnet = _network(ec2, subnet=True, vpc=True, groups=None)
    mine = ec2.create_security_group(GroupName="mine", Description="x", VpcId=vpc)["GroupId"]
    _insufficient(account["emr"], _run(account["emr"], subnet, EmrManagedMasterSecurityGroup=mine))


def test_private_subnet_uses_the_private_default_groups(account):
    """No internet gateway route: EMR uses ElasticMapReduce-Master-Private, -Slave-Private
    and -ServiceAccess; the public groups, tagged or not, do not matter."""
    ec2, emr = account["ec2"], account["emr"]
    vpc, subnet = _network(ec2, subnet=True, vpc=True, groups=False, public=False)
    cluster = _run(emr, subnet)
    assert states_seen(emr, cluster, ("WAITING", "TERMINATED_WITH_ERRORS"))[-1] == "WAITING"
    ec2.create_security_group(
        GroupName="ElasticMapReduce-ServiceAccess", Description="x", VpcId=vpc
    )  # untagged
    _insufficient(emr, _run(emr, subnet))


def test_groups_moto_creates_for_the_request_are_not_held_against_it(emr_emulator, account):
    """In moto's own EMR region (us-east-1) its RunJobFlow creates the private default
    groups, untagged: they did not exist before the request, so they must not fail it."""
    kwargs = {**client_kwargs(emr_emulator), "region_name": "us-east-1"}
    ec2, emr = boto3.client("ec2", **kwargs), boto3.client("emr", **kwargs)
    _, subnet = _network(ec2, subnet=True, vpc=True, groups=None, public=False)
    cluster = _run(emr, subnet)
    assert states_seen(emr, cluster, ("WAITING", "TERMINATED_WITH_ERRORS"))[-1] == "WAITING"
    created = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["ElasticMapReduce-Master-Private"]}]
    )["SecurityGroups"]
    assert created  # moto did create it (else this test proves nothing)


def test_v1_role_is_not_held_to_v2_tags(account):
    """Without the v2 policy attached nothing is tag-scoped: an untagged network starts."""
    _, subnet = _network(account["ec2"], subnet=False, vpc=False, groups=False)
    cluster = start_cluster(
        account["emr"],
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
            "Ec2SubnetId": subnet,
        },
    )
    assert states_seen(account["emr"], cluster, ("WAITING", "TERMINATED_WITH_ERRORS"))[-1] == (
        "WAITING"
    )


def test_unknown_security_configuration_is_refused(account):
    emr = account["emr"]
    with pytest.raises(ClientError) as raised:
        start_cluster(emr, SecurityConfiguration="nope")
    assert raised.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Security configuration with name 'nope' does not exist.",
    }
    assert emr.list_clusters()["Clusters"] == []
    emr.create_security_configuration(Name="nope", SecurityConfiguration="{}")
    cluster = start_cluster(emr, SecurityConfiguration="nope")
    assert emr.describe_cluster(ClusterId=cluster)["Cluster"]["SecurityConfiguration"] == "nope"


def test_without_a_subnet_the_default_vpc_must_be_tagged(account):
    """No Ec2SubnetId: EMR launches into a default subnet of the default VPC."""
    ec2, emr = account["ec2"], account["emr"]
    instances = {
        "InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
    }
    _insufficient(emr, start_cluster(emr, ServiceRole=ROLE, Instances=instances))
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    ec2.create_tags(
        Resources=[vpc["VpcId"], *(s["SubnetId"] for s in subnets["Subnets"])], Tags=[TAG]
    )
    cluster = start_cluster(emr, ServiceRole=ROLE, Instances=instances)
    assert states_seen(emr, cluster, ("WAITING", "TERMINATED_WITH_ERRORS"))[-1] == "WAITING"
