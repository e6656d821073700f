"""Preflight: what would make a cluster fail or cost money, checked before one exists.

Each check reads the account (IAM, EC2, Service Quotas, S3) for the run's ``RunJobFlow``
request (or, with :func:`preflight_serverless`, an EMR Serverless run's job role and bucket)
and returns a :class:`Check`: passed, failed (a one-line reason and what to change)
or unknown (the service could not answer: a warning, never a silent pass). The EMR DAG runs
them in its ``preflight`` task; ``python -m include.infra preflight`` runs them by hand.

Evidence for each rule is cited at the check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from include.infra.check import DENIED, Check, denied, error_code
from include.infra.network_checks import (
    GROUP_FIELDS,
    V2_SERVICE_POLICY,
    check_install_source,
    check_network_tags,
    check_subnet,
    find_subnet,
)

CLEANUP_ROLE = "AWSServiceRoleForEMRCleanup"
"""EMR's service-linked role (EMR Management Guide, "Using service-linked roles for Amazon
EMR for cleanup"): EMR creates it during cluster creation if it does not exist, which needs
``iam:CreateServiceLinkedRole`` for ``elasticmapreduce.amazonaws.com`` from the caller."""

# Service Quotas codes of the EC2 vCPU limits for the standard families (A, C, D, H, I, M, R,
# T, Z), which every allowed instance type belongs to (AWS CLI reference, service-quotas
# get-aws-default-service-quota --service-code ec2 --quota-code L-1216C47A).
ON_DEMAND_QUOTA = "L-1216C47A"
"""Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)."""
SPOT_QUOTA = "L-34B43A08"
"""All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests (vCPUs)."""


@dataclass(frozen=True)
class ClusterRequest:
    """What the checks need from a ``RunJobFlow`` request (see :meth:`from_overrides`)."""

    region: str
    bucket: str
    service_role: str
    instance_profile: str
    subnet_id: str
    instance_types: tuple[tuple[str, int, str], ...]
    """(instance type, count, market) per instance group."""
    install_from_s3_only: bool = False
    """True when the bootstrap installs from a wheelhouse in S3 (no internet needed)."""
    security_groups: tuple[tuple[str, str], ...] = ()
    """(``Instances`` field, group id) of every security group the request names."""
    security_configuration: str = ""
    """The EMR security configuration the request names (empty: none)."""

    @classmethod
    def from_overrides(
        cls, overrides: dict[str, Any], *, region: str, bucket: str, install_from_s3_only: bool
    ) -> ClusterRequest:
        instances = overrides.get("Instances", {})
        return cls(
            region=region,
            bucket=bucket,
            service_role=overrides.get("ServiceRole", ""),
            instance_profile=overrides.get("JobFlowRole", ""),
            subnet_id=instances.get("Ec2SubnetId", ""),
            instance_types=tuple(
                (g["InstanceType"], int(g["InstanceCount"]), g.get("Market", "ON_DEMAND"))
                for g in instances.get("InstanceGroups", [])
            ),
            install_from_s3_only=install_from_s3_only,
            security_configuration=overrides.get("SecurityConfiguration", ""),
            security_groups=tuple(
                (field, group)
                for field in GROUP_FIELDS
                for group in _as_list(instances.get(field) or [])
            ),
        )


def check_roles(iam: Any, request: ClusterRequest) -> tuple[Check, bool]:
    """The service role and instance profile exist; also returns whether v2 is attached."""
    fix = (
        "run `python -m include.infra create-roles`, or set FRUITS_EMR_SERVICE_ROLE / "
        "FRUITS_EMR_INSTANCE_PROFILE to roles that exist"
    )
    missing = []
    v2 = False
    try:
        attached = iam.list_attached_role_policies(RoleName=request.service_role)
        v2 = any(p["PolicyName"] == V2_SERVICE_POLICY for p in attached["AttachedPolicies"])
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        missing.append(f"service role {request.service_role!r}")
    try:
        iam.get_instance_profile(InstanceProfileName=request.instance_profile)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        missing.append(f"instance profile {request.instance_profile!r}")
    if missing:
        return Check("roles", False, f"{' and '.join(missing)} not found", fix), v2
    policy = V2_SERVICE_POLICY if v2 else "not the v2 policy"
    return Check(
        "roles", True, f"{request.service_role} ({policy}), {request.instance_profile}"
    ), v2


def check_instance_types(ec2: Any, request: ClusterRequest) -> Check:
    """Every instance type is offered in the subnet's AZ (or the region without a subnet)."""
    subnet = find_subnet(ec2, request.subnet_id) if request.subnet_id else None
    if subnet is not None:
        location_type, location = "availability-zone", subnet["AvailabilityZone"]
    else:
        location_type, location = "region", request.region
    wanted = sorted({t for t, _, _ in request.instance_types})
    offered = {
        offer["InstanceType"]
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType=location_type,
            Filters=[
                {"Name": "instance-type", "Values": wanted},
                {"Name": "location", "Values": [location]},
            ],
        )
        for offer in page["InstanceTypeOfferings"]
    }
    missing = [t for t in wanted if t not in offered]
    if missing:
        return Check(
            "instance type",
            False,
            f"{', '.join(missing)} not offered in {location}",
            "pick another instance_type, or a subnet in an AZ that offers it",
        )
    return Check("instance type", True, f"{', '.join(wanted)} offered in {location}")


def check_vcpu_quota(ec2: Any, quotas: Any, request: ClusterRequest) -> list[Check]:
    """The account's vCPU quotas (on-demand, spot) cover the cluster's vCPUs.

    Compares the request with the quota value; instances already running count against the
    same quota, so a pass with little headroom can still fail on a busy account.
    """
    types = sorted({t for t, _, _ in request.instance_types})
    vcpus = {
        t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"])
        for t in ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]
    }
    need = {"ON_DEMAND": 0, "SPOT": 0}
    for instance_type, count, market in request.instance_types:
        need[market] += vcpus[instance_type] * count
    checks = []
    for market, code in (("ON_DEMAND", ON_DEMAND_QUOTA), ("SPOT", SPOT_QUOTA)):
        if not need[market]:
            continue
        name = f"{market.lower().replace('_', '-')} vCPU quota"
        try:
            quota = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
        except ClientError as exc:
            checks.append(
                Check(
                    name,
                    None,
                    f"could not check quota {code} ({error_code(exc) or exc}); the cluster needs "
                    f"{need[market]} vCPUs",
                    "look it up in the Service Quotas console before a large run",
                )
            )
            continue
        limit = float(quota["Value"])
        if need[market] > limit:
            checks.append(
                Check(
                    name,
                    False,
                    f"the cluster needs {need[market]} vCPUs, the quota {code} is {limit:g}",
                    "use fewer/smaller nodes or request a quota increase (Service Quotas)",
                )
            )
        else:
            checks.append(
                Check(
                    name, True, f"{need[market]} vCPUs needed, quota {limit:g} (running count too)"
                )
            )
    return checks


def check_bucket(s3: Any, request: ClusterRequest | ServerlessRequest) -> Check:
    """The bucket exists, is in the run's region and has default encryption."""
    try:
        location = s3.get_bucket_location(Bucket=request.bucket)["LocationConstraint"]
    except ClientError as exc:
        if error_code(exc) in ("NoSuchBucket", "404", "AccessDenied", "403"):
            return Check(
                "bucket",
                False,
                f"s3://{request.bucket} not found or not yours ({error_code(exc)})",
                "run `python -m include.infra create-bucket` or fix FRUITS_BUCKET",
            )
        raise
    region = location or "us-east-1"  # S3 reports us-east-1 as no constraint
    if region != request.region:
        return Check(
            "bucket",
            False,
            f"s3://{request.bucket} is in {region}, the cluster in {request.region}",
            "use a bucket in the cluster's region (FRUITS_BUCKET / FRUITS_REGION)",
        )
    try:
        rules = s3.get_bucket_encryption(Bucket=request.bucket)[
            "ServerSideEncryptionConfiguration"
        ]["Rules"]
    except ClientError as exc:
        if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    if not rules:
        return Check(
            "bucket",
            False,
            f"s3://{request.bucket} has no default encryption",
            "run `python -m include.infra create-bucket --bucket ...` to re-harden it",
        )
    algorithm = rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    return Check("bucket", True, f"s3://{request.bucket} in {region}, {algorithm}")


def check_cleanup_role(iam: Any) -> Check:
    """``AWSServiceRoleForEMRCleanup`` exists, or a warning that RunJobFlow will create it.

    A warning, not a failure: a fresh account never has it, and EMR creates it at the first
    cluster when the caller may ``iam:CreateServiceLinkedRole`` (the Airflow policy grants
    that). Whether the caller may cannot be read without ``iam:SimulatePrincipalPolicy``
    (which the caller may lack, and moto does not serve), so it is said, not checked.
    """
    name = "cleanup service-linked role"
    try:
        iam.get_role(RoleName=CLEANUP_ROLE)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity" and error_code(exc) not in DENIED:
            raise
        return Check(
            name,
            None,
            f"{CLEANUP_ROLE} {'not found' if error_code(exc) == 'NoSuchEntity' else 'unreadable'}"
            ": EMR creates it at RunJobFlow only if the caller may iam:CreateServiceLinkedRole "
            "for elasticmapreduce.amazonaws.com, else RunJobFlow fails",
            "allow that action (the Airflow policy does) or create it once: aws iam "
            "create-service-linked-role --aws-service-name elasticmapreduce.amazonaws.com",
        )
    return Check(name, True, f"{CLEANUP_ROLE} exists")


def check_security_configuration(emr: Any, request: ClusterRequest) -> Check:
    """The security configuration the request names exists (RunJobFlow refuses one that
    does not: "Security configuration with name '...' does not exist.")."""
    name = "security configuration"
    if not request.security_configuration:
        return Check(name, True, "none (FRUITS_EMR_SECURITY_CONFIGURATION unset)")
    try:
        emr.describe_security_configuration(Name=request.security_configuration)
    except ClientError as exc:
        if error_code(exc) in DENIED:
            return denied(name, exc, "elasticmapreduce:DescribeSecurityConfiguration")
        if error_code(exc) not in ("InvalidRequestException", "ResourceNotFoundException"):
            raise
        return Check(
            name,
            False,
            f"{request.security_configuration!r} does not exist in {request.region}",
            "run `python -m include.infra create-security-configuration`, or unset "
            "FRUITS_EMR_SECURITY_CONFIGURATION to run without one",
        )
    return Check(name, True, f"{request.security_configuration} exists")


def run_preflight(client: Callable[[str], Any], request: ClusterRequest) -> list[Check]:
    """Every check, in order; ``client(service)`` gives a boto3 client in the run's region.

    The CLI passes ``AwsContext.client``; the DAG the provider's ``AwsBaseHook`` clients
    (which honour the Airflow connection's endpoint and credentials).
    """
    ec2, iam = client("ec2"), client("iam")
    roles, v2_policy = check_roles(iam, request)
    checks = [roles, check_cleanup_role(iam), check_subnet(ec2, request, v2_policy=v2_policy)]
    checks.append(check_network_tags(ec2, request, v2_policy=v2_policy))
    checks.append(check_instance_types(ec2, request))
    checks.extend(check_vcpu_quota(ec2, client("service-quotas"), request))
    checks.append(check_bucket(client("s3"), request))
    checks.append(check_security_configuration(client("emr"), request))
    checks.append(check_install_source(ec2, request))
    return checks


# --- EMR Serverless --------------------------------------------------------------------

SERVERLESS_PRINCIPAL = "emr-serverless.amazonaws.com"


@dataclass(frozen=True)
class ServerlessRequest:
    """What the Serverless checks need: the job runs' execution role and the bucket."""

    region: str
    bucket: str
    job_role: str
    """The job runtime role: a name, or the ``executionRoleArn`` itself."""

    @property
    def job_role_name(self) -> str:
        """The role's name (the last part of an ARN, which may carry a path)."""
        return (
            self.job_role.rsplit("/", 1)[-1] if self.job_role.startswith("arn:") else self.job_role
        )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _trusts_service(trust: dict[str, Any], service: str) -> dict[str, Any] | None:
    """The Allow statement of the trust policy that lets ``service`` assume the role."""
    for statement in _as_list(trust.get("Statement", [])):
        principal = statement.get("Principal") or {}
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
        actions = _as_list(statement.get("Action", []))
        if (
            statement.get("Effect") == "Allow"
            and service in services
            and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
        ):
            return statement
    return None


def check_serverless_job_role(iam: Any, request: ServerlessRequest) -> Check:
    """The job runtime role exists and EMR Serverless may assume it (its trust policy).

    StartJobRun accepts a role EMR Serverless cannot assume; the job run then fails minutes
    later (AWS's EMR Serverless User Guide, "Job runtime roles": the role's trust policy names
    ``emr-serverless.amazonaws.com``).
    """
    name = request.job_role_name
    fix = (
        "run `python -m include.infra create-roles`, or point the DAG at a job role "
        f"trusted by {SERVERLESS_PRINCIPAL}"
    )
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        return Check("serverless job role", False, f"role {name!r} not found", fix)
    trust = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(trust, str):
        trust = json.loads(unquote(trust))
    statement = _trusts_service(trust, SERVERLESS_PRINCIPAL)
    if statement is None:
        return Check(
            "serverless job role",
            False,
            f"role {name!r} cannot be assumed by {SERVERLESS_PRINCIPAL} (its trust policy)",
            fix,
        )
    account = (statement.get("Condition") or {}).get("StringEquals", {}).get("aws:SourceAccount")
    scope = f", only for account {account}" if account else ""
    return Check("serverless job role", True, f"{name}: assumable by {SERVERLESS_PRINCIPAL}{scope}")


def preflight_serverless(client: Callable[[str], Any], request: ServerlessRequest) -> list[Check]:
    """The Serverless DAG's checks before an application exists: job role, then bucket.

    ``client(service)`` as for :func:`run_preflight`.
    """
    return [
        check_serverless_job_role(client("iam"), request),
        check_bucket(client("s3"), request),
    ]


def failures(checks: list[Check]) -> list[Check]:
    """The failed checks (warnings are not failures)."""
    return [c for c in checks if c.ok is False]
