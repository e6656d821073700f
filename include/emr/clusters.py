"""Finding this project's EMR clusters by tag.

:func:`find_clusters` finds this project's live clusters by tag (the terminate task uses it
when a cluster's id never reached XCom; the sweeper uses it for orphans).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from include.emr_common.runs import tagged_run_is_active

ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
"""States of a cluster that is (or will be) billed; TERMINATING ones are already on their way."""


def find_clusters(
    emr_client: Any,
    *,
    tags: Mapping[str, str],
    states: Iterable[str] = ACTIVE_CLUSTER_STATES,
    created_before: datetime | None = None,
    created_after: datetime | None = None,
) -> list[dict[str, Any]]:
    """Clusters in ``states`` carrying every tag in ``tags`` (``describe_cluster`` shapes).

    ``list_clusters`` does not return tags, so each candidate is described; the state
    filter keeps that to the handful of live clusters. Ended states are not a handful (EMR
    lists clusters for two months): look for those with ``created_after`` too.
    """
    kwargs: dict[str, Any] = {"ClusterStates": list(states)}
    if created_before is not None:
        kwargs["CreatedBefore"] = created_before
    if created_after is not None:
        kwargs["CreatedAfter"] = created_after
    found = []
    for page in emr_client.get_paginator("list_clusters").paginate(**kwargs):
        for summary in page.get("Clusters", []):
            cluster = emr_client.describe_cluster(ClusterId=summary["Id"])["Cluster"]
            cluster_tags = {t["Key"]: t["Value"] for t in cluster.get("Tags", [])}
            if all(cluster_tags.get(key) == value for key, value in tags.items()):
                found.append(cluster)
    return found


def run_is_active(
    cluster: Mapping[str, Any],
    get_dagrun_state: Callable[[str, str], str],
    *,
    log: Callable[[str], None] = print,
) -> bool:
    """True when the cluster's DAG run (``dag_id``/``run_id`` tags) is still queued or running.

    See :func:`tagged_run_is_active`; a cluster's tags are ``describe_cluster``'s list.
    """
    tags = {t["Key"]: t["Value"] for t in cluster.get("Tags", [])}
    return tagged_run_is_active(
        tags, get_dagrun_state, what=f"cluster {cluster.get('Id')}", log=log
    )
