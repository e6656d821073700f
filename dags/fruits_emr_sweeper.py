"""
### Sweep orphaned EMR clusters and EMR Serverless applications of this project

On a schedule, terminates this project's clusters (tag `Project=fruits-features`) that are
still alive after a TTL. They exist only when Airflow itself died between
`create_emr_cluster` and `terminate_emr_cluster` of `fruits_emr_pipeline` (the cluster's
own idle auto-termination is the other backstop). Clusters without the project tag are
never touched.

- `find_stale_clusters` lists live (STARTING/BOOTSTRAPPING/RUNNING/WAITING) clusters
  created before *now − TTL*, keeps the tagged ones, and **drops every cluster whose DAG
  run is still queued or running** (its `dag_id`/`run_id` tags, looked up through Airflow's
  own API): a long healthy run is never cut short, whatever its age.
- `terminate_stale_clusters` terminates them, or only logs them with the `dry_run` Param.
- `sweep_serverless_applications` (a separate task: one failing does not hide the other)
  stops and deletes this project's EMR Serverless applications (same tag) created and last
  changed before *now − TTL* that are not in use: no job run submitted, pending, scheduled,
  running, queued or cancelling, and no queued/running DAG run in their `dag_id`/`run_id`
  tags. A started application is stopped first (waiting until STOPPED). `dry_run` only
  logs. An application that cannot be removed makes the task fail, naming it.

TTL: the `ttl_hours` Param, or `FRUITS_CLUSTER_TTL_HOURS` when left empty; its default is
the longest run the EMR DAG allows by default (create wait 45 min + full-mode step timeout
6 h + 1 h margin, rounded up: 8 h).
Schedule: `FRUITS_SWEEPER_SCHEDULE` (default `@hourly`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, chain, task

from include.config import sweeper_schedule
from include.emr import sweep as cluster_sweep
from include.emr_serverless import sweep as serverless_sweep
from include.params.defaults import DAG_START_DATE, dag_default_args

with DAG(
    dag_id="fruits_emr_sweeper",
    schedule=sweeper_schedule(),
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_default_args(retry_delay=timedelta(minutes=5)),
    params={
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Only list the clusters and applications that would be removed.",
        ),
        "ttl_hours": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="TTL (hours)",
            description="Remove tagged clusters/applications older than this whose run is over. "
            "Empty = FRUITS_CLUSTER_TTL_HOURS (default: the longest allowed run, 8 h).",
        ),
    },
    tags=["fruits", "emr", "cost"],
    doc_md=__doc__,
):

    @task
    def find_stale_clusters(**context: Any) -> list[dict[str, str]]:
        """This project's live clusters created before now - TTL whose run is over."""
        return cluster_sweep.find_stale_clusters(context["params"], context["ti"].get_dagrun_state)

    @task
    def terminate_stale_clusters(clusters: list[dict[str, str]], **context: Any) -> list[str]:
        """Terminate the given clusters (nothing with dry_run); return the ids acted on."""
        return cluster_sweep.terminate_stale_clusters(clusters, context["params"])

    @task
    def sweep_serverless_applications(**context: Any) -> list[dict[str, str]]:
        """Stop and delete this project's stale, unused EMR Serverless applications."""
        return serverless_sweep.sweep_serverless_applications(
            context["params"], context["ti"].get_dagrun_state
        )

    # Two independent sweeps: one failing does not hide the other.
    stale_clusters = find_stale_clusters()
    chain(stale_clusters, terminate_stale_clusters(stale_clusters))
    sweep_serverless_applications()
