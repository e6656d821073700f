"""IAM for EMR: the service role, the EC2 instance profile, the EMR Serverless job role, and
the Airflow identity's policy.

The Serverless job-runtime role (the job runs' ``executionRoleArn``) is trusted by
``emr-serverless.amazonaws.com`` only for this account's applications (``aws:SourceAccount``
and ``aws:SourceArn``, AWS's confused-deputy advice) and may only read and write the
project's prefix (and read a ``dataset_uri`` outside it): no Glue, no wildcard resource.

Role names default to project-specific ones (not EMR_DefaultRole / EMR_EC2_DefaultRole), so
creating them never changes roles other workloads in the account rely on. Every role and
policy is tagged ``Project=<PROJECT_TAG>``; an existing role without that tag is never touched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from include.config import (
    DEFAULT_INSTANCE_ROLE,
    DEFAULT_SERVERLESS_JOB_ROLE,
    DEFAULT_SERVICE_ROLE,
    PROJECT_TAG,
)
from include.infra.aws import AwsContext
from include.infra.dataset_access import LIST_SID, dataset_read_statements
from include.infra.errors import InfraError, RefusedError
from include.infra.policies import EMR_SERVICE_MANAGED_POLICY, policy_json, render_policy

AIRFLOW_POLICY_NAME = f"{PROJECT_TAG}-airflow-pipeline"
SERVICE_INLINE_POLICY = "pass-project-instance-role"
INSTANCE_INLINE_POLICY = "project-bucket-access"
SERVERLESS_INLINE_POLICY = "project-bucket-access"
_TAGS = [{"Key": "Project", "Value": PROJECT_TAG}]


@dataclass(frozen=True)
class RoleSettings:
    """Names and scope of the roles: which bucket and key prefix they may touch."""

    bucket: str
    prefix: str
    service_role: str = DEFAULT_SERVICE_ROLE
    instance_role: str = DEFAULT_INSTANCE_ROLE
    dataset_uri: str | None = None
    """A dataset read in place (``s3://bucket/prefix/``); outside the project's prefix, the
    instance profile and the Serverless job role get read-only access to it
    (``include/infra/dataset_access.py``)."""
    serverless_job_role: str = DEFAULT_SERVERLESS_JOB_ROLE

    @property
    def instance_profile(self) -> str:
        """The instance profile has the same name as its role (what the console does)."""
        return self.instance_role


def project_role_names(settings: RoleSettings) -> tuple[str, ...]:
    """The roles create-roles makes: EMR service, EC2 instance, EMR Serverless job."""
    return (settings.service_role, settings.instance_role, settings.serverless_job_role)


def render_documents(ctx: AwsContext, settings: RoleSettings) -> dict[str, dict[str, Any]]:
    """Every policy document, rendered for this account, region, bucket and prefix."""
    values = {
        "bucket": settings.bucket,
        "prefix": settings.prefix.strip("/"),
        "account_id": ctx.account_id,
        "region": ctx.region,
        "partition": ctx.partition,
        "service_role": settings.service_role,
        "instance_role": settings.instance_role,
        "serverless_job_role": settings.serverless_job_role,
        "project_tag": PROJECT_TAG,
    }
    documents = {
        name: render_policy(name, **values)
        for name in (
            "emr-service-trust",
            "emr-service-inline",
            "emr-ec2-trust",
            "emr-ec2-inline",
            "emr-serverless-trust",
            "emr-serverless-job",
            "airflow-pipeline",
        )
    }
    try:
        extra = dataset_read_statements(
            settings.dataset_uri,
            bucket=settings.bucket,
            prefix=settings.prefix,
            partition=ctx.partition,
        )
    except ValueError as exc:
        raise RefusedError(str(exc)) from None
    # Both compute identities read the dataset the same way (copies: documents stay independent).
    documents["emr-ec2-inline"]["Statement"].extend(extra)
    documents["emr-serverless-job"]["Statement"].extend(copy.deepcopy(extra))
    # Airflow lists it (validate_dataset) and never reads an object of it: the listing only.
    documents["airflow-pipeline"]["Statement"].extend(
        copy.deepcopy([s for s in extra if s["Sid"] == LIST_SID])
    )
    return documents


def managed_service_policy_arn(ctx: AwsContext) -> str:
    """ARN of the AWS-managed EMR service policy in this partition."""
    return f"arn:{ctx.partition}:iam::aws:policy/{EMR_SERVICE_MANAGED_POLICY}"


def airflow_policy_arn(ctx: AwsContext) -> str:
    """ARN of the customer-managed policy for the identity Airflow's connection uses."""
    return f"arn:{ctx.partition}:iam::{ctx.account_id}:policy/{AIRFLOW_POLICY_NAME}"


def _tags_of(tag_list: list[dict[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tag_list or []}


def _is_no_such_entity(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "NoSuchEntity"


def _refuse_unless_ours(tag_list: list[dict[str, str]] | None, what: str, advice: str) -> None:
    """RefusedError unless the tags carry our Project tag: the resource is someone else's."""
    if _tags_of(tag_list).get("Project") != PROJECT_TAG:
        raise RefusedError(f"{what} exists but is not tagged Project={PROJECT_TAG}: {advice}")


def get_project_role(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    """The role if it exists and carries our Project tag; None if it does not exist.

    Raises RefusedError if it exists without the tag: it belongs to something else.
    """
    iam = ctx.client("iam")
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return None
        raise
    _refuse_unless_ours(
        iam.list_role_tags(RoleName=name).get("Tags"),
        f"IAM role {name!r}",
        "it is not this project's, so it is left alone. Pick other names with "
        "--service-role/--instance-role/--serverless-job-role.",
    )
    return role


def _ensure_role(ctx: AwsContext, name: str, trust: dict[str, Any], description: str) -> bool:
    """Create the role, or update the trust policy of our existing one; True if created."""
    iam = ctx.client("iam")
    if get_project_role(ctx, name) is None:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=policy_json(trust),
            Description=description,
            Tags=_TAGS,
        )
        return True
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=policy_json(trust))
    return False


def _get_project_instance_profile(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    """The instance profile if it exists and is ours; None if absent; RefusedError if foreign."""
    try:
        profile = ctx.client("iam").get_instance_profile(InstanceProfileName=name)
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return None
        raise
    _refuse_unless_ours(
        profile["InstanceProfile"].get("Tags"),
        f"instance profile {name!r}",
        "it is left alone. Pick another name with --instance-role.",
    )
    return profile["InstanceProfile"]


def create_roles(ctx: AwsContext, settings: RoleSettings) -> dict[str, Any]:
    """Create or update the EMR roles, the instance profile, the Serverless job role and the
    Airflow policy (idempotent).

    Every name is checked before anything is created, so a refusal changes nothing; if an AWS
    call fails half-way, what this call created is deleted again before the error is raised.
    """
    iam = ctx.client("iam")
    docs = render_documents(ctx, settings)
    roles_before = {
        name: get_project_role(ctx, name) is not None for name in project_role_names(settings)
    }
    profile = _get_project_instance_profile(ctx, settings.instance_profile)
    policy_before = project_policy_exists(ctx, airflow_policy_arn(ctx))
    managed_arn = managed_service_policy_arn(ctx)
    try:
        iam.get_policy(PolicyArn=managed_arn)
    except ClientError as exc:
        if not _is_no_such_entity(exc):
            raise
        raise InfraError(f"AWS-managed policy {managed_arn} not found in this account") from None

    created: list[str] = []

    def role_with_inline_policy(name: str, trust: str, policy: str, inline: str, what: str) -> None:
        _ensure_role(ctx, name, docs[trust], f"{what} of {PROJECT_TAG} (bucket {settings.bucket})")
        if not roles_before[name]:
            created.append(f"role:{name}")
        iam.put_role_policy(
            RoleName=name, PolicyName=inline, PolicyDocument=policy_json(docs[policy])
        )

    try:
        role_with_inline_policy(
            settings.service_role,
            "emr-service-trust",
            "emr-service-inline",
            SERVICE_INLINE_POLICY,
            "EMR service role",
        )
        iam.attach_role_policy(RoleName=settings.service_role, PolicyArn=managed_arn)

        role_with_inline_policy(
            settings.instance_role,
            "emr-ec2-trust",
            "emr-ec2-inline",
            INSTANCE_INLINE_POLICY,
            "EC2 instance role of EMR clusters",
        )
        if profile is None:
            iam.create_instance_profile(InstanceProfileName=settings.instance_profile, Tags=_TAGS)
            created.append(f"profile:{settings.instance_profile}")
            attached: list[str] = []
        else:
            attached = [r["RoleName"] for r in profile["Roles"]]
        if settings.instance_role not in attached:
            iam.add_role_to_instance_profile(
                InstanceProfileName=settings.instance_profile, RoleName=settings.instance_role
            )

        role_with_inline_policy(
            settings.serverless_job_role,
            "emr-serverless-trust",
            "emr-serverless-job",
            SERVERLESS_INLINE_POLICY,
            "EMR Serverless job runtime role",
        )

        airflow_arn = _ensure_airflow_policy(ctx, docs["airflow-pipeline"])
    except Exception:
        _rollback(ctx, created)
        raise
    return {
        "service_role": settings.service_role,
        "service_role_created": not roles_before[settings.service_role],
        "instance_role": settings.instance_role,
        "instance_role_created": not roles_before[settings.instance_role],
        "instance_profile": settings.instance_profile,
        "serverless_job_role": settings.serverless_job_role,
        "serverless_job_role_created": not roles_before[settings.serverless_job_role],
        "airflow_policy_arn": airflow_arn,
        "airflow_policy_created": not policy_before,
    }


def _rollback(ctx: AwsContext, created: list[str]) -> None:
    """Delete what a failed create_roles call created (best effort, newest first)."""
    iam = ctx.client("iam")
    for item in reversed(created):
        kind, _, name = item.partition(":")
        try:
            if kind == "profile":
                for role in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"][
                    "Roles"
                ]:
                    iam.remove_role_from_instance_profile(
                        InstanceProfileName=name, RoleName=role["RoleName"]
                    )
                iam.delete_instance_profile(InstanceProfileName=name)
            else:
                _delete_role(ctx, name)
        except ClientError:
            # The original error matters more; what is left is tagged and cleanup removes it.
            continue


def _delete_role(ctx: AwsContext, name: str) -> None:
    """Detach and delete every policy of the role, take it out of profiles, delete it."""
    iam = ctx.client("iam")
    for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=name
        )
    iam.delete_role(RoleName=name)


def project_policy_exists(ctx: AwsContext, arn: str) -> bool:
    """True if our managed policy exists; RefusedError if it exists without our Project tag."""
    iam = ctx.client("iam")
    try:
        iam.get_policy(PolicyArn=arn)
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return False
        raise
    _refuse_unless_ours(
        iam.list_policy_tags(PolicyArn=arn).get("Tags"), f"IAM policy {arn}", "it is left alone"
    )
    return True


def _ensure_airflow_policy(ctx: AwsContext, document: dict[str, Any]) -> str:
    """Create the managed policy, or make the document its default version if it exists."""
    iam = ctx.client("iam")
    arn = airflow_policy_arn(ctx)
    if not project_policy_exists(ctx, arn):
        iam.create_policy(
            PolicyName=AIRFLOW_POLICY_NAME,
            PolicyDocument=policy_json(document),
            Description=f"What Airflow's AWS connection needs to run the {PROJECT_TAG} pipeline",
            Tags=_TAGS,
        )
        return arn
    # IAM keeps at most 5 versions: drop the oldest non-default ones before adding one.
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
    for version in old[: max(0, len(versions) - 4)]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.create_policy_version(
        PolicyArn=arn, PolicyDocument=policy_json(document), SetAsDefault=True
    )
    return arn


def delete_roles(ctx: AwsContext, settings: RoleSettings) -> list[str]:
    """Delete our roles, instance profile and Airflow policy; return what was deleted.

    Anything that exists without our Project tag raises RefusedError before anything is deleted.
    """
    iam = ctx.client("iam")
    roles = [
        name for name in project_role_names(settings) if get_project_role(ctx, name) is not None
    ]
    profile = _get_project_instance_profile(ctx, settings.instance_profile)
    arn = airflow_policy_arn(ctx)
    policy_exists = project_policy_exists(ctx, arn)

    deleted: list[str] = []
    if profile is not None:
        for role in profile["Roles"]:
            iam.remove_role_from_instance_profile(
                InstanceProfileName=settings.instance_profile, RoleName=role["RoleName"]
            )
        iam.delete_instance_profile(InstanceProfileName=settings.instance_profile)
        deleted.append(f"instance profile {settings.instance_profile}")
    for name in roles:
        _delete_role(ctx, name)
        deleted.append(f"role {name}")
    if policy_exists:
        _delete_managed_policy(ctx, arn)
        deleted.append(f"policy {AIRFLOW_POLICY_NAME}")
    return deleted


def _delete_managed_policy(ctx: AwsContext, arn: str) -> None:
    """Detach the policy from every user, group and role, then delete all its versions."""
    iam = ctx.client("iam")
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    for user in entities.get("PolicyUsers", []):
        iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
    for group in entities.get("PolicyGroups", []):
        iam.detach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
    for role in entities.get("PolicyRoles", []):
        iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=arn)
