"""What the v2 service policy needs of the network, checked when a cluster starts.

A service role with ``AmazonEMRServicePolicy_v2`` may launch instances only into subnets and
security groups tagged ``for-use-with-amazon-emr-managed-policies=true`` (statement
``CreateInTaggedNetwork``), and may create EMR's default security groups only in a VPC with
that tag (statement ``CreateDefaultSecurityGroupInVPCWithEMRTags``). AWS Managed Policy
reference, AmazonEMRServicePolicy_v2; EMR Management Guide, "Amazon EMR managed policies",
"Tagging resources to use managed policies": tag the subnets, the security groups EMR did not
create, and the VPC if EMR is to create security groups. RunJobFlow accepts such a request;
the cluster then ends ``TERMINATED_WITH_ERRORS`` with ``VALIDATION_ERROR`` "Service role
<arn> has insufficient EC2 permissions" (the words EMR gives, e.g.
terraform-aws-modules/terraform-aws-emr#3).

The emulator keeps its own table of these rules (it checks the project, not the other way).
It reads moto's IAM and EC2 backends of the cluster's account and region. Not emulated:
which subnet of several EMR picks (every one named must be tagged; the first one decides
public or private).
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("emr_emulator")

V2_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
TAG_KEY = "for-use-with-amazon-emr-managed-policies"
TAG_VALUE = "true"

# EMR's default security groups (EMR Management Guide, "Working with Amazon EMR-managed
# security groups"): the request field that names one instead, and the default EMR uses
# (and creates when it does not exist) in a public subnet (a default route through an
# internet gateway) or a private one.
PUBLIC_GROUPS = (
    ("EmrManagedMasterSecurityGroup", "ElasticMapReduce-master"),
    ("EmrManagedSlaveSecurityGroup", "ElasticMapReduce-slave"),
)
PRIVATE_GROUPS = (
    ("EmrManagedMasterSecurityGroup", "ElasticMapReduce-Master-Private"),
    ("EmrManagedSlaveSecurityGroup", "ElasticMapReduce-Slave-Private"),
    ("ServiceAccessSecurityGroup", "ElasticMapReduce-ServiceAccess"),
)
ADDITIONAL_GROUPS = ("AdditionalMasterSecurityGroups", "AdditionalSlaveSecurityGroups")


def insufficient_permissions(role_arn: str) -> str:
    """EMR's ``VALIDATION_ERROR`` message when the service role cannot launch the nodes."""
    return f"Service role {role_arn} has insufficient EC2 permissions"


def _tagged(resource: Any) -> bool:
    tags = {t["key"]: t["value"] for t in resource.get_tags()}
    return tags.get(TAG_KEY) == TAG_VALUE


def _v2_role(account: str, role_name_or_arn: str) -> Any | None:
    """The service role when it carries the v2 policy, else None."""
    from moto.iam.models import iam_backends  # noqa: PLC0415 (lazy: loads moto and boto3)

    name = role_name_or_arn.rsplit("/", 1)[-1]
    try:
        role = iam_backends[account]["global"].get_role(name)
    except Exception:  # no such role: nothing of v2 to enforce (moto has no role checks)
        return None
    return role if V2_POLICY_ARN in role.managed_policies else None


def _public(ec2: Any, subnet: Any) -> bool:
    """A default route through an internet gateway in the subnet's route table (its own,
    else its VPC's main one)."""
    tables = ec2.describe_route_tables(filters={"association.subnet-id": [subnet.id]})
    if not tables:
        tables = ec2.describe_route_tables(
            filters={"vpc-id": [subnet.vpc_id], "association.main": ["true"]}
        )
    return any(
        route.destination_cidr_block == "0.0.0.0/0"
        and str(getattr(route.gateway, "id", "")).startswith("igw-")
        for table in tables
        for route in table.routes
    )


def untagged_resources(ec2: Any, instances: dict[str, Any]) -> list[str]:
    """The subnets, VPC and security groups of ``instances`` v2 cannot use, as ``kind id``."""
    subnet_ids = [
        s for s in [instances.get("Ec2SubnetId")] + (instances.get("Ec2SubnetIds") or []) if s
    ]
    if subnet_ids:
        subnets = ec2.describe_subnets(subnet_ids=subnet_ids)
    else:  # EMR launches into a default subnet of the default VPC
        vpc = ec2.get_default_vpc()
        subnets = [s for s in ec2.describe_subnets() if vpc and s.vpc_id == vpc.id]
        subnets = [s for s in subnets if s.default_for_az] or subnets
    problems = [f"subnet {s.id}" for s in subnets if not _tagged(s)]
    if not subnets:
        return ["subnet (none in the default VPC)"]
    vpc_id = subnets[0].vpc_id
    must_create = False
    groups = []
    for field, default_name in PUBLIC_GROUPS if _public(ec2, subnets[0]) else PRIVATE_GROUPS:
        if instances.get(field):
            groups.append(ec2.get_security_group_from_id(instances[field]))
            continue
        existing = ec2.get_security_group_from_name(default_name, vpc_id)
        if existing is not None:
            groups.append(existing)
        else:
            must_create = True
    for field in ADDITIONAL_GROUPS:
        groups.extend(ec2.get_security_group_from_id(g) for g in instances.get(field) or [])
    problems += [
        f"security group {g.id} ({g.name})" for g in groups if g is not None and not _tagged(g)
    ]
    if must_create and not _tagged(ec2.get_vpc(vpc_id)):
        problems.append(f"vpc {vpc_id} (EMR must create its default security groups in it)")
    return problems


def _credential(environ: dict[str, Any]) -> list[str]:
    """``key/date/region/service/aws4_request`` of a SigV4 ``Authorization`` header, split."""
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    marker = "Credential="
    return auth.split(marker, 1)[1].split(",", 1)[0].split("/") if marker in auth else []


def request_account_and_region(environ: dict[str, Any]) -> tuple[str, str]:
    """The account and region moto files a signed request under, found as moto finds them
    (``MOTO_ACCOUNT_ID``, the ``x-moto-account-id`` header, the access key's account; the
    signed region). moto's EMR backend cannot be asked: behind a plain endpoint URL it files
    every cluster under its default region, while EC2 uses the signed one."""

    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415 (lazy: loads moto and boto3)
    from moto.iam.models import get_account_id_from  # noqa: PLC0415 (lazy: loads moto and boto3)

    parts = _credential(environ)
    region = parts[2] if len(parts) > 2 else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    account = os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if not account:
        account = get_account_id_from(parts[0]) if parts else DEFAULT_ACCOUNT_ID
    return account, region


def v2_network_failure(request: dict[str, Any], account: str, region: str) -> str | None:
    """EMR's ``VALIDATION_ERROR`` message for this RunJobFlow request, or None when the v2
    policy is not attached to its service role or every network resource is tagged.

    Called before moto runs the request: moto's RunJobFlow creates EMR's default groups
    itself (untagged), which would then look like groups that existed before."""
    from moto.ec2.models import ec2_backends  # noqa: PLC0415 (lazy: loads moto and boto3)

    role = _v2_role(account, str(request.get("ServiceRole", "")))
    if role is None:
        return None
    ec2 = ec2_backends[account][region]
    try:
        problems = untagged_resources(ec2, request.get("Instances") or {})
    except Exception as exc:  # an unknown subnet/group id: EMR fails validation as well
        problems = [f"unknown resource ({exc})"]
    if not problems:
        return None
    log.info(
        "RunJobFlow: %s lacks %s=%s on: %s",
        role.name,
        TAG_KEY,
        TAG_VALUE,
        "; ".join(problems),
    )
    return insufficient_permissions(role.arn)
