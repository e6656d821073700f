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

from airflow.sdk import Param, chain, dag, task

from include.config import sweeper_schedule
from include.params.defaults import DAG_START_DATE, dag_default_args


@dag(
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
)
def fruits_emr_sweeper() -> None:
    @task
    def find_stale_clusters(**context: Any) -> list[dict[str, str]]:
        """This project's live clusters created before now - TTL whose run is over."""
        from datetime import UTC, datetime

        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        from include.config import PROJECT_TAG, load_config
        from include.emr.clusters import find_clusters, run_is_active

        config = load_config()
        ttl = context["params"].get("ttl_hours") or config.cluster_ttl_hours
        now = datetime.now(UTC)
        cutoff = now - timedelta(hours=float(ttl))
        emr = EmrHook(aws_conn_id=config.aws_conn_id, region_name=config.region).conn
        stale = [
            {
                "id": cluster["Id"],
                "name": cluster.get("Name", ""),
                "state": cluster["Status"]["State"],
                "created": str(cluster["Status"]["Timeline"]["CreationDateTime"]),
            }
            for cluster in find_clusters(emr, tags={"Project": PROJECT_TAG}, created_before=cutoff)
            if not run_is_active(cluster, context["ti"].get_dagrun_state, log=print)
        ]
        print(f"{len(stale)} cluster(s) tagged Project={PROJECT_TAG} older than {ttl} h: {stale}")
        return stale

    @task
    def terminate_stale_clusters(clusters: list[dict[str, str]], **context: Any) -> list[str]:
        """Terminate the given clusters (nothing with dry_run); return the ids acted on."""
        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        from include.config import load_config

        ids = [cluster["id"] for cluster in clusters]
        if not ids:
            print("nothing to sweep")
            return []
        if context["params"].get("dry_run"):
            print(f"dry run: would terminate {ids}")
            return []
        config = load_config()
        emr = EmrHook(aws_conn_id=config.aws_conn_id, region_name=config.region).conn
        emr.terminate_job_flows(JobFlowIds=ids)
        print(f"terminated {ids}")
        return ids

    @task
    def sweep_serverless_applications(**context: Any) -> list[dict[str, str]]:
        """Stop and delete this project's stale, unused EMR Serverless applications."""
        from datetime import UTC, datetime

        from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

        from include.config import PROJECT_TAG, load_config
        from include.emr_serverless.applications import sweep_applications

        config = load_config()
        ttl = context["params"].get("ttl_hours") or config.cluster_ttl_hours
        hook = EmrServerlessHook(aws_conn_id=config.aws_conn_id, region_name=config.region)

        def wait_stopped(application_id: str) -> None:
            # Stopping takes up to a few minutes on AWS; 10 minutes is the bound.
            hook.get_waiter("serverless_app_stopped").wait(
                applicationId=application_id, WaiterConfig={"Delay": 15, "MaxAttempts": 40}
            )

        swept = sweep_applications(
            hook.conn,
            project_tag=PROJECT_TAG,
            idle_since_before=datetime.now(UTC) - timedelta(hours=float(ttl)),
            get_dagrun_state=context["ti"].get_dagrun_state,
            wait_stopped=wait_stopped,
            dry_run=bool(context["params"].get("dry_run")),
            log=print,
        )
        print(
            f"{len(swept)} application(s) tagged Project={PROJECT_TAG} older than {ttl} h: {swept}"
        )
        return swept

    chain(terminate_stale_clusters(find_stale_clusters()))
    sweep_serverless_applications()


fruits_emr_sweeper()
