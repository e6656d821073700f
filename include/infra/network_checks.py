"""Preflight checks of the cluster's network: tags the v2 service policy needs, routes.

``AmazonEMRServicePolicy_v2`` acts only on network resources tagged
``for-use-with-amazon-emr-managed-policies=true`` (AWS Managed Policy reference,
AmazonEMRServicePolicy_v2): ``CreateInTaggedNetwork`` lets it launch instances only into
tagged subnets and security groups, ``CreateDefaultSecurityGroupInVPCWithEMRTags`` lets it
create EMR's default security groups only in a tagged VPC. The EMR Management Guide
("Amazon EMR managed policies", "Tagging resources to use managed policies") says the same:
tag the subnets, the security groups EMR did not create, and the VPC if EMR is to create
security groups. Without them the cluster ends ``VALIDATION_ERROR`` "Service role ... has
insufficient EC2 permissions" minutes after RunJobFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from include.config import EMR_MANAGED_POLICY_TAG
from include.infra.check import DENIED, Check, denied, error_code

if TYPE_CHECKING:
    from include.infra.preflight import ClusterRequest

V2_SERVICE_POLICY = "AmazonEMRServicePolicy_v2"

PUBLIC_DEFAULT_GROUPS = {
    "EmrManagedMasterSecurityGroup": "ElasticMapReduce-master",
    "EmrManagedSlaveSecurityGroup": "ElasticMapReduce-slave",
}
PRIVATE_DEFAULT_GROUPS = {
    "EmrManagedMasterSecurityGroup": "ElasticMapReduce-Master-Private",
    "EmrManagedSlaveSecurityGroup": "ElasticMapReduce-Slave-Private",
    "ServiceAccessSecurityGroup": "ElasticMapReduce-ServiceAccess",
}
"""The RunJobFlow field naming a group, and the default EMR uses without it, creating it when
it does not exist (EMR Management Guide, "Working with Amazon EMR-managed security groups"):
in a public subnet master and slave; in a private one their -Private groups and the
service-access group."""

GROUP_FIELDS = (
    *PRIVATE_DEFAULT_GROUPS,
    "AdditionalMasterSecurityGroups",
    "AdditionalSlaveSecurityGroups",
)
"""Every ``Instances`` field of RunJobFlow that names security groups."""


def tag_command(resources: list[str], region: str) -> str:
    """The AWS CLI command that gives ``resources`` the tag the v2 policies need."""
    return (
        f"aws ec2 create-tags --region {region} --resources {' '.join(resources)} "
        f"--tags Key={EMR_MANAGED_POLICY_TAG},Value=true"
    )


def _tagged(resource: dict[str, Any]) -> bool:
    tags = {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
    return tags.get(EMR_MANAGED_POLICY_TAG) == "true"


def find_subnet(ec2: Any, subnet_id: str) -> dict[str, Any] | None:
    """The subnet as DescribeSubnets gives it, or None when it does not exist."""
    try:
        return ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    except ClientError as exc:
        if "NotFound" in error_code(exc):
            return None
        raise


def check_subnet(ec2: Any, request: ClusterRequest, *, v2_policy: bool) -> Check:
    """The subnet exists, and carries the v2 tag when the v2 service policy is in use.

    ``AmazonEMRServicePolicy_v2`` allows ``ec2:RunInstances`` only in subnets tagged
    ``for-use-with-amazon-emr-managed-policies=true`` (statement ``CreateInTaggedNetwork``).
    Without a subnet EMR launches into the default VPC's subnet, which nobody tagged.
    """
    if not request.subnet_id:
        if v2_policy:
            return Check(
                "subnet",
                False,
                f"no FRUITS_SUBNET_ID: EMR would use a default subnet, and {V2_SERVICE_POLICY} "
                "launches only into tagged ones",
                f"set FRUITS_SUBNET_ID to a subnet tagged {EMR_MANAGED_POLICY_TAG}=true",
            )
        return Check("subnet", True, "none set: EMR uses the default VPC (v1 policy)")
    subnet = find_subnet(ec2, request.subnet_id)
    if subnet is None:
        return Check(
            "subnet",
            False,
            f"{request.subnet_id} does not exist in {request.region}",
            "set FRUITS_SUBNET_ID to a subnet of this region",
        )
    tags = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}
    if v2_policy and tags.get(EMR_MANAGED_POLICY_TAG) != "true":
        return Check(
            "subnet",
            False,
            f"{request.subnet_id} lacks the tag {EMR_MANAGED_POLICY_TAG}=true that "
            f"{V2_SERVICE_POLICY} needs to launch instances in it",
            tag_command([request.subnet_id], request.region),
        )
    return Check("subnet", True, f"{request.subnet_id} in {subnet['AvailabilityZone']}")


def _groups(ec2: Any, **filters: list[str]) -> list[dict[str, Any]]:
    return ec2.describe_security_groups(
        Filters=[{"Name": name.replace("_", "-"), "Values": v} for name, v in filters.items()]
    )["SecurityGroups"]


def check_network_tags(ec2: Any, request: ClusterRequest, *, v2_policy: bool) -> Check:
    """Under the v2 policy: the security groups the cluster uses carry the tag, and the VPC
    does when EMR has to create its default groups in it.

    Groups used: those the request names, and EMR's defaults for the subnet (public: a
    default route through an internet gateway) that already exist in its VPC. A default
    group that does not exist is created by EMR, which needs the VPC's tag.
    """
    name = "vpc and security groups"
    if not v2_policy or not request.subnet_id:
        return Check(name, True, "no tags needed (v1 policy)" if not v2_policy else "see subnet")
    subnet = find_subnet(ec2, request.subnet_id)
    if subnet is None:
        return Check(name, False, f"{request.subnet_id} does not exist", "see subnet")
    try:
        return _network_tags(ec2, request, subnet, name)
    except ClientError as exc:
        if error_code(exc) not in DENIED:
            raise
        return denied(name, exc, "ec2:DescribeSecurityGroups and ec2:DescribeVpcs")


def _network_tags(ec2: Any, request: ClusterRequest, subnet: dict[str, Any], name: str) -> Check:
    vpc_id = subnet["VpcId"]
    public = bool(_internet_gateways(_route_table(ec2, subnet)))
    default_groups = PUBLIC_DEFAULT_GROUPS if public else PRIVATE_DEFAULT_GROUPS
    named = {group for _, group in request.security_groups}
    used = _groups(ec2, group_id=sorted(named)) if named else []
    missing_named = sorted(named - {g["GroupId"] for g in used})
    if missing_named:
        return Check(
            name,
            False,
            f"security group(s) {', '.join(missing_named)} do not exist",
            "fix the security group ids of the cluster request",
        )
    fields = {field for field, _ in request.security_groups}
    defaults = [n for f, n in default_groups.items() if f not in fields]
    existing = _groups(ec2, vpc_id=[vpc_id], group_name=defaults) if defaults else []
    used += existing
    untagged = sorted({g["GroupId"] for g in used if not _tagged(g)})
    created = [n for n in defaults if n not in {g["GroupName"] for g in existing}]
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    problems = []
    if untagged:
        problems.append(f"security group(s) {', '.join(untagged)}")
    if created and not _tagged(vpc):
        problems.append(f"VPC {vpc_id} (EMR must create {', '.join(created)} in it)")
        untagged.append(vpc_id)
    if problems:
        return Check(
            name,
            False,
            f"{' and '.join(problems)} lack(s) the tag {EMR_MANAGED_POLICY_TAG}=true "
            f"that {V2_SERVICE_POLICY} needs: the cluster would end VALIDATION_ERROR",
            tag_command(untagged, request.region),
        )
    groups = ", ".join(sorted(g["GroupId"] for g in used)) or "none yet"
    return Check(name, True, f"{vpc_id} tagged or not needed; groups in use: {groups}")


def _route_table(ec2: Any, subnet: dict[str, Any]) -> dict[str, Any] | None:
    """The subnet's route table: its explicit association, else the VPC's main table."""
    explicit = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}]
    )["RouteTables"]
    if explicit:
        return explicit[0]
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    return main[0] if main else None


def _internet_gateways(table: dict[str, Any] | None, *, nat: bool = False) -> list[str]:
    """The active default routes of ``table`` through an internet gateway (a public subnet),
    and with ``nat`` through a NAT gateway too."""
    return [
        r.get("GatewayId") or r.get("NatGatewayId")
        for r in (table or {}).get("Routes", [])
        if r.get("DestinationCidrBlock") == "0.0.0.0/0"
        and (str(r.get("GatewayId", "")).startswith("igw-") or (nat and r.get("NatGatewayId")))
        and r.get("State", "active") == "active"
    ]


def check_install_source(ec2: Any, request: ClusterRequest) -> Check:
    """The nodes can reach what the bootstrap installs from.

    From PyPI: a default route through an internet or NAT gateway. From a wheelhouse in S3
    (``install_from_s3_only``): that, or an S3 gateway endpoint on the subnet's route table.
    """
    if not request.subnet_id:
        return Check("network", True, "default VPC: its subnets route to the internet")
    subnet = find_subnet(ec2, request.subnet_id)
    if subnet is None:
        return Check("network", False, f"{request.subnet_id} does not exist", "see subnet")
    table = _route_table(ec2, subnet)
    internet = _internet_gateways(table, nat=True)
    if internet:
        return Check(
            "network", True, f"{request.subnet_id} routes to the internet via {internet[0]}"
        )
    s3_service = f"com.amazonaws.{request.region}.s3"
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[
            {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
            {"Name": "service-name", "Values": [s3_service]},
        ]
    )["VpcEndpoints"]
    table_id = table.get("RouteTableId") if table else None
    gateway = [
        e["VpcEndpointId"]
        for e in endpoints
        if e.get("VpcEndpointType", "Gateway") == "Gateway"
        and table_id in e.get("RouteTableIds", [])
    ]
    if request.install_from_s3_only and gateway:
        return Check("network", True, f"{request.subnet_id} reaches S3 via {gateway[0]}")
    if request.install_from_s3_only:
        return Check(
            "network",
            False,
            f"{request.subnet_id} has no route to S3 (no internet/NAT route, no S3 gateway "
            "endpoint): the bootstrap cannot fetch the wheelhouse",
            f"add a gateway VPC endpoint for {s3_service} to route table {table_id}",
        )
    return Check(
        "network",
        False,
        f"{request.subnet_id} has no internet or NAT route: the bootstrap cannot reach PyPI",
        "add a NAT gateway route (0.0.0.0/0) to its route table, or install from the wheelhouse",
    )
