"""
### Fruits-360 features on AWS EMR

Extracts MobileNetV2 features from a Fruits-360-style image folder and fits a PCA, on a
transient EMR cluster (Spark + Livy) that this DAG creates and **always** terminates.

1. `validate_params` — checks the trigger form (fails before anything costs money) and
   plans the run: S3 keys, cluster request, Spark step. `preflight` then checks the account
   for that request (roles, tagged subnet, instance type in the AZ, vCPU quota, bucket,
   route to the install source); each failure names what to change.
2. `validate_dataset` — the local folder exists and has `<split>/<label>/<image>` images;
   or, with `dataset_uri` (`FRUITS_DATASET_URI`), the S3 prefix is listed (nothing is
   downloaded) and must hold that layout or packed `*.parquet` shards; the job then reads
   it in place and `upload_dataset` uploads nothing. With `pack_s3_dataset`, an
   images-layout S3 dataset is packed into parquet shards by a first Spark step on the
   cluster (`plan_cluster_steps` plans it; once per listing, later runs read the shards).
   `skip_if_unchanged` — the dataset manifest + run fingerprint equal the last successful
   run's (`results/_last_success.json`) and its results are still there: every later task
   is *skipped* (no upload, no cluster), the log names the earlier run and its report, the
   run ends success. The `force` Param reruns anyway.
   `check_budget` — the estimated cost (images / runtime throughput + cluster start + one
   poll, priced from the price table) must not exceed `max_cost_usd`.
3. `upload_dataset` (parquet shards by default; unchanged objects are skipped),
   `upload_job_package` (job zip, entry script, bootstrap, requirements, weights file,
   the converted model) and `stage_wheelhouse` (the nodes' wheels in S3, reused while the
   requirements and constraints are unchanged; the bootstrap installs them with
   `--no-index`).
4. `create_emr_cluster` — emr-7.x, Spark + Livy, bootstrap installing the job's
   requirements, idle auto-termination as a cost backstop, tagged Project/dag_id/run_id.
5. `add_feature_step` (and the packing step before it, when planned) →
   `wait_for_feature_step` (a failed step's FailureDetails and the tail of its `stderr.gz`,
   waited for up to `step_log_wait_seconds`, are shown in the task log, secrets masked).
   Create and add-step are safe to retry: a retry reuses the run's cluster and an
   already-added step; a retry of a create whose same request ended
   `TERMINATED_WITH_ERRORS` fails at once with EMR's reason (a changed request is created
   anew), and a cluster that went straight to `TERMINATED` fails the create.
6. `download_results` → `<results dir>/<run id>/` (refused without `_SUCCESS`), then, once
   `terminate_emr_cluster` is done, `build_report` (HTML report with cost estimate and the
   cluster's final state and billed time), then `publish_results`: manifest,
   fingerprint, estimate and report beside the S3 results, the last-success record, and
   events for the `fruits_features_pca` / `fruits_features_features` Assets.
7. `terminate_emr_cluster` runs whatever failed (trigger rule ALL_DONE) and also finds the
   run's clusters by tag when the create task failed before reporting an id.
8. `fail_run_if_any_task_failed` makes the run end *failed* when any task failed.

Configuration (bucket, prefix, region, roles, subnet, tags) comes from the environment at
run time (`include/config.py`). Clusters orphaned by a dead Airflow are removed by the
`fruits_emr_sweeper` DAG.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, TriggerRule, chain, task

from include.config import emr_schedule
from include.costs.budget import check_run_budget
from include.emr import tasks as emr_tasks
from include.emr.operators import (
    EmrAddStepOnceOperator,
    EmrCreateClusterOperator,
    EmrStepSensorWithLogs,
    EmrTerminateRunClustersOperator,
)
from include.emr_common.tasks import (
    fail_run,
    publish_results,
    upload_dataset,
    upload_job_package,
    validate_dataset,
)
from include.infra.dag_preflight import preflight_cluster
from include.params.cluster import emr_params
from include.params.defaults import DAG_START_DATE, EMR_RETRY_DELAY, dag_default_args
from include.params.plan_types import ClusterPlan, RunInfo
from include.reruns.skip import skip_if_unchanged as skip_unchanged_run

with DAG(
    dag_id="fruits_emr_pipeline",
    schedule=emr_schedule(),
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_default_args(retry_delay=EMR_RETRY_DELAY),
    params=emr_params(),
    tags=["fruits", "emr", "spark", "features"],
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=True)
    def validate_params(**context: Any) -> ClusterPlan:
        """Validate the Params and the configuration; return the run's plan."""
        run = context["dag_run"]
        return emr_tasks.validate_params(context["params"], dag_id=run.dag_id, run_id=run.run_id)

    @task
    def preflight(plan: ClusterPlan) -> list[dict[str, Any]]:
        """Check roles, subnet, instance type, vCPU quota, bucket and network before paying."""
        return preflight_cluster(plan)

    @task.short_circuit
    def skip_if_unchanged(plan: ClusterPlan, **context: Any) -> RunInfo | None:
        """Fingerprint the run; None (skip every later task) when it is unchanged."""
        return skip_unchanged_run("emr", context["params"], plan=plan, run_id=context["run_id"])

    @task
    def check_budget(dataset: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Estimate the run's cost before any cluster exists; fail when over max_cost_usd."""
        return check_run_budget("emr", dataset, context["params"])

    @task
    def plan_cluster_steps(plan: ClusterPlan, dataset: dict[str, Any]) -> list[dict[str, Any]]:
        """The steps to add: the feature step, after a packing step when planned."""
        return emr_tasks.plan_cluster_steps(plan, dataset)

    @task
    def stage_wheelhouse(plan: ClusterPlan) -> dict[str, Any] | None:
        """Stage the nodes' wheels in S3 (reused while requirements/constraints are unchanged)."""
        return emr_tasks.stage_wheelhouse(plan)

    @task
    def download_results(plan: ClusterPlan, cluster_id: str | None) -> str:
        """Download metrics, PCA (and optionally features) and cluster.json; return the folder."""
        return emr_tasks.download_results(plan, cluster_id)

    @task
    def build_report(
        plan: dict[str, Any],
        run_dir: str,
        estimate: dict[str, Any] | None,
        cluster_id: str | None,
    ) -> str:
        """The HTML report (cost estimate, the cluster's final state and billed time)."""
        return emr_tasks.build_report(plan, run_dir, estimate, cluster_id)

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run_if_any_task_failed(**context: Any) -> None:
        """Runs only when a task failed: makes the run end failed (terminate is ALL_DONE)."""
        cluster_id = context["ti"].xcom_pull(task_ids="create_emr_cluster")
        fail_run("cluster", cluster_id, teardown="terminate_emr_cluster")

    plan = validate_params()
    aws = {"aws_conn_id": plan["aws_conn_id"], "region_name": plan["region"]}
    dataset = validate_dataset(plan)
    estimate = check_budget(dataset)
    run_info = skip_if_unchanged(plan)
    steps = plan_cluster_steps(plan, dataset)
    create_emr_cluster = EmrCreateClusterOperator(
        task_id="create_emr_cluster",
        emr_conn_id=None,
        job_flow_overrides=plan["job_flow_overrides"],
        wait_for_completion=True,
        waiter_delay=plan["poke_interval"],
        waiter_max_attempts=plan["create_max_attempts"],
        deferrable=plan["deferrable"],
        **aws,
    )
    add_feature_step = EmrAddStepOnceOperator(
        task_id="add_feature_step", job_flow_id=create_emr_cluster.output, steps=steps, **aws
    )
    wait_for_feature_step = EmrStepSensorWithLogs(
        task_id="wait_for_feature_step",
        job_flow_id=create_emr_cluster.output,
        step_id=add_feature_step.output,
        log_uri=plan["log_uri"],
        wait=plan["wait"],
        deferrable=plan["deferrable"],
        **aws,
    )
    results = download_results(plan, create_emr_cluster.output)
    report = build_report(plan, results, estimate, create_emr_cluster.output)
    terminate_emr_cluster = EmrTerminateRunClustersOperator(
        task_id="terminate_emr_cluster",
        job_flow_id=create_emr_cluster.output,
        trigger_rule=TriggerRule.ALL_DONE,
        **aws,
    )

    chain(
        # RUN SETUP: every check before anything costs money, then the run's inputs in S3
        plan,
        preflight(plan),
        dataset,
        run_info,
        estimate,
        [upload_dataset(plan), upload_job_package(plan), stage_wheelhouse(plan), steps],
        # RUN BODY: the cluster runs the job; its results come back, are reported, published
        create_emr_cluster,
        add_feature_step,
        wait_for_feature_step,
        results,
        report,
        publish_results(plan, results, run_info),
    )
    # RUN TEARDOWN: whatever happened (ALL_DONE), as soon as the step is over or anything
    # before it failed: the cluster is not needed to download the results. The report
    # waits for it, to record the cluster's final state and billed time.
    chain(wait_for_feature_step, terminate_emr_cluster, report)
    # The watcher, downstream of every task: a failed task fails the run even though the
    # teardown (ALL_DONE) succeeded.
    list(dag.tasks) >> fail_run_if_any_task_failed()
