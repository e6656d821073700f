"""Task bodies of the sweeper DAG (``fruits_emr_sweeper``) for clusters: this project's live
clusters older than the TTL whose DAG run is over, found, then terminated.

Plain functions, called by the DAG's tasks in a line or two. Heavy imports (the provider's
hooks) stay inside them: the DAG file imports this module at parse time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _emr_client(config: Any) -> Any:
    from airflow.providers.amazon.aws.hooks.emr import EmrHook

    return EmrHook(aws_conn_id=config.aws_conn_id, region_name=config.region).conn


def find_stale_clusters(
    params: Mapping[str, Any], get_dagrun_state: Callable[[str, str], str]
) -> list[dict[str, str]]:
    """This project's live clusters created before now - TTL whose run is over.

    ``get_dagrun_state``: Airflow's own look-up of a run's state (the task instance's).
    """
    from include.config import PROJECT_TAG, load_config
    from include.emr.clusters import find_clusters, run_is_active
    from include.emr_common.runs import sweep_cutoff

    config = load_config()
    ttl, cutoff = sweep_cutoff(params, config.cluster_ttl_hours)
    stale = [
        {
            "id": cluster["Id"],
            "name": cluster.get("Name", ""),
            "state": cluster["Status"]["State"],
            "created": str(cluster["Status"]["Timeline"]["CreationDateTime"]),
        }
        for cluster in find_clusters(
            _emr_client(config), tags={"Project": PROJECT_TAG}, created_before=cutoff
        )
        if not run_is_active(cluster, get_dagrun_state, log=print)
    ]
    print(f"{len(stale)} cluster(s) tagged Project={PROJECT_TAG} older than {ttl} h: {stale}")
    return stale


def terminate_stale_clusters(
    clusters: list[dict[str, str]], params: Mapping[str, Any]
) -> list[str]:
    """Terminate the given clusters (nothing with the ``dry_run`` Param); return the ids
    acted on."""
    from include.config import load_config

    ids = [cluster["id"] for cluster in clusters]
    if not ids:
        print("nothing to sweep")
        return []
    if params.get("dry_run"):
        print(f"dry run: would terminate {ids}")
        return []
    _emr_client(load_config()).terminate_job_flows(JobFlowIds=ids)
    print(f"terminated {ids}")
    return ids
