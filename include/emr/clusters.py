"""Finding this project's EMR clusters by tag.

:func:`find_clusters` finds this project's live clusters by tag (the terminate task uses it
when a cluster's id never reached XCom; the sweeper uses it for orphans).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

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


ACTIVE_RUN_STATES = ("queued", "running")
"""Airflow DagRun states of a run that may still use its cluster."""


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


def tagged_run_is_active(
    tags: Mapping[str, str],
    get_dagrun_state: Callable[[str, str], str],
    *,
    what: str,
    log: Callable[[str], None] = print,
) -> bool:
    """True when the DAG run named by ``tags`` (``dag_id``/``run_id``) is queued or running.

    ``get_dagrun_state`` is Airflow's own lookup (``RuntimeTaskInstance.get_dagrun_state`` in
    a task). A resource without the tags, or whose run Airflow does not know (404), is not
    protected: that is what an orphan looks like; any other lookup error protects it. The
    tags hold the run id as :func:`include.emr.plan.tag_value` wrote it, which is the run id
    itself for the run ids Airflow makes (``manual__<iso date>``, ``scheduled__<iso date>``).
    ``what`` names the resource in the log lines (``cluster j-...``, ``application 00f...``).
    """
    dag_id, run_id = tags.get("dag_id"), tags.get("run_id")
    if not dag_id or not run_id:
        return False
    try:
        state = str(get_dagrun_state(dag_id, run_id))
    except Exception as exc:
        detail = str(exc)
        # The SDK's ServerResponseError prints only "Server returned error": its HTTP status
        # is on the response.
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 404 or "404" in detail or "not found" in detail.lower():
            # An unknown run (deleted, or another Airflow's) cannot be using the resource.
            log(f"{what}: run {dag_id}/{run_id} not found: not protected")
            return False
        # Any other failure to ask: protect the resource (a healthy run must never be cut
        # short because Airflow's API hiccupped); the next sweep asks again.
        log(f"{what}: could not ask for run {dag_id}/{run_id} ({exc}): kept")
        return True
    state = state.rsplit(".", 1)[-1].lower()  # a DagRunState enum prints as DagRunState.RUNNING
    if state in ACTIVE_RUN_STATES:
        log(f"{what}: run {dag_id}/{run_id} is {state}: left alone")
        return True
    return False
