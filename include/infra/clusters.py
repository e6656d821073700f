"""The project's EMR clusters: find them by tag, summarise their cost, terminate them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from include.config import PROJECT_TAG
from include.costs.cluster import cluster_cost_summary
from include.infra.aws import AwsContext
from include.infra.errors import InfraError, RefusedError

ACTIVE_STATES: tuple[str, ...] = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING")
"""Cluster states that still cost money."""


def is_project_cluster(cluster: dict[str, Any]) -> bool:
    """True if ``describe_cluster()['Cluster']`` carries ``Project=<PROJECT_TAG>``."""
    tags = {tag["Key"]: tag["Value"] for tag in cluster.get("Tags", [])}
    return tags.get("Project") == PROJECT_TAG


def describe(ctx: AwsContext, cluster_id: str) -> dict[str, Any]:
    """``describe_cluster(...)['Cluster']``, with a clear error for an unknown id."""
    try:
        return ctx.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (
            "InvalidRequestException",
            "ValidationException",
        ):
            raise RefusedError(
                f"no EMR cluster {cluster_id!r} in {ctx.region}: "
                f"{exc.response['Error'].get('Message', '')}"
            ) from None
        raise


def instance_groups(ctx: AwsContext, cluster_id: str) -> list[dict[str, Any]]:
    """Every instance group of the cluster (all pages)."""
    paginator = ctx.client("emr").get_paginator("list_instance_groups")
    return [g for page in paginator.paginate(ClusterId=cluster_id) for g in page["InstanceGroups"]]


def active_project_clusters(ctx: AwsContext) -> list[dict[str, Any]]:
    """Descriptions of this project's clusters in an active state, oldest first."""
    paginator = ctx.client("emr").get_paginator("list_clusters")
    found: list[dict[str, Any]] = []
    for page in paginator.paginate(ClusterStates=list(ACTIVE_STATES)):
        for listed in page["Clusters"]:
            cluster = describe(ctx, listed["Id"])
            if is_project_cluster(cluster):
                found.append(cluster)
    return sorted(found, key=lambda c: c["Status"]["Timeline"]["CreationDateTime"])


def cluster_status(ctx: AwsContext, now: datetime | None = None) -> list[dict[str, Any]]:
    """A cost summary (:func:`include.costs.cluster.cluster_cost_summary`) per active cluster."""
    return [
        cluster_cost_summary(cluster, instance_groups(ctx, cluster["Id"]), now=now)
        for cluster in active_project_clusters(ctx)
    ]


def terminate(ctx: AwsContext, cluster_ids: list[str]) -> list[str]:
    """Terminate the given clusters after checking each is the project's; return those asked.

    Every id is checked before any is terminated, so one foreign id stops the whole command.
    Clusters already terminated are skipped.
    """
    to_terminate: list[str] = []
    for cluster_id in cluster_ids:
        cluster = describe(ctx, cluster_id)
        if not is_project_cluster(cluster):
            raise RefusedError(
                f"cluster {cluster_id} ({cluster.get('Name')!r}) is not tagged "
                f"Project={PROJECT_TAG}: it is not this project's, refusing to terminate it"
            )
        if cluster["Status"]["State"] in ACTIVE_STATES:
            if cluster.get("TerminationProtected"):
                raise InfraError(
                    f"cluster {cluster_id} has termination protection on; turn it off first "
                    "(aws emr modify-cluster-attributes --no-termination-protected)"
                )
            to_terminate.append(cluster_id)
    if to_terminate:
        ctx.client("emr").terminate_job_flows(JobFlowIds=to_terminate)
    return to_terminate
