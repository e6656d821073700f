"""Is a resource's DAG run still active? Read from its ``dag_id``/``run_id`` tags (both sweeps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

ACTIVE_RUN_STATES = ("queued", "running")
"""Airflow DagRun states of a run that may still use its cluster."""


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
    tags hold the run id as :func:`include.emr_common.plan.tag_value` wrote it, which is the run id
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


def sweep_cutoff(params: Mapping[str, Any], default_ttl_hours: float) -> tuple[Any, datetime]:
    """(TTL in hours as given, now - TTL) of a sweep: the ``ttl_hours`` Param, else the
    default (``FRUITS_CLUSTER_TTL_HOURS``)."""
    ttl = params.get("ttl_hours") or default_ttl_hours
    return ttl, datetime.now(UTC) - timedelta(hours=float(ttl))
