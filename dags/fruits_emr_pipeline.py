"""
### Fruits-360 features on AWS EMR

Extracts MobileNetV2 features from a Fruits-360-style image folder and fits a PCA, on a
transient EMR cluster (Spark + Livy) that this DAG creates and **always** terminates.

1. `validate_params` — checks the trigger form (fails before anything costs money) and
   plans the run: S3 keys, cluster request, Spark step.
2. `validate_dataset` — the local folder exists and has `<split>/<label>/<image>` images;
   or, with `dataset_uri` (`FRUITS_DATASET_URI`), the S3 prefix is listed (nothing is
   downloaded) and must hold that layout or packed `*.parquet` shards; the job then reads
   it in place and `upload_dataset` uploads nothing.
   `skip_if_unchanged` — the dataset manifest + run fingerprint equal the last successful
   run's (`results/_last_success.json`) and its results are still there: every later task
   is *skipped* (no upload, no cluster), the log names the earlier run and its report, the
   run ends success. The `force` Param reruns anyway.
   `check_budget` — the estimated cost (images / runtime throughput + cluster start + one
   poll, priced from the price table) must not exceed `max_cost_usd`.
3. `upload_dataset` (parquet shards by default; unchanged objects are skipped) and
   `upload_job_package` (job zip, entry script, bootstrap, requirements, weights file).
4. `create_emr_cluster` — emr-7.x, Spark + Livy, bootstrap installing the job's
   requirements, idle auto-termination as a cost backstop, tagged Project/dag_id/run_id.
5. `add_feature_step` → `wait_for_feature_step` (a failed step's details and stderr tail
   are shown in the task log).
6. `download_results` → `<results dir>/<run id>/` (refused without `_SUCCESS`), then
   `build_report` (HTML report with cost estimate), then `publish_results`: manifest,
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

from datetime import timedelta
from typing import Any

from airflow.sdk import TriggerRule, chain, dag, task

from include.assets import FEATURES_ASSET, PCA_ASSET
from include.config import DAG_START_DATE, dag_default_args, emr_schedule
from include.emr import (
    EmrAddStepOnceOperator,
    EmrCreateClusterOperator,
    EmrStepSensorWithLogs,
    EmrTerminateRunClustersOperator,
)
from include.params import emr_params


@dag(
    dag_id="fruits_emr_pipeline",
    schedule=emr_schedule(),
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_default_args(retry_delay=timedelta(minutes=2)),
    params=emr_params(),
    tags=["fruits", "emr", "spark", "features"],
    doc_md=__doc__,
)
def fruits_emr_pipeline() -> None:
    @task(multiple_outputs=True)
    def validate_params(**context: Any) -> dict[str, Any]:
        """Validate the Params and the configuration; return the run's plan."""
        from pathlib import Path

        from airflow.sdk.exceptions import AirflowFailException

        from include.config import load_config
        from include.emr import build_run_plan
        from include.params import emr_settings_from_params
        from include.s3_dataset import dataset_uri_setting, plan_for_s3_dataset

        try:
            settings = emr_settings_from_params(dict(context["params"]))
            config = load_config()
            dataset_uri = dataset_uri_setting(dict(context["params"]), config.dataset_uri)
        except ValueError as exc:
            raise AirflowFailException(f"Invalid run settings: {exc}") from exc
        dag_run = context["dag_run"]
        plan = build_run_plan(settings, config, dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        if dataset_uri:  # read in place: the step's --input is the URI, nothing is uploaded
            plan = plan_for_s3_dataset(plan, dataset_uri)
        if plan["weights_file"] and not Path(plan["weights_file"]).is_file():
            raise AirflowFailException(
                f"Invalid run settings: weights file {plan['weights_file']} does not exist"
            )
        return plan

    @task
    def validate_dataset(plan: dict[str, Any]) -> dict[str, Any]:
        """Fail fast when the dataset (folder, or S3 prefix: listed, not downloaded) is
        missing, empty or laid out wrongly."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.dataset import DatasetError, validate_dataset
        from include.s3_dataset import S3DatasetError, validate_s3_dataset
        from include.staging import make_s3_hook

        try:
            if plan.get("dataset_uri"):
                hook = make_s3_hook(plan["aws_conn_id"])
                return validate_s3_dataset(hook, plan["dataset_uri"])
            summary = validate_dataset(plan["dataset_dir"])
        except (DatasetError, S3DatasetError) as exc:
            raise AirflowFailException(str(exc)) from exc
        return summary.to_dict()

    @task.short_circuit
    def skip_if_unchanged(plan: dict[str, Any], **context: Any) -> dict[str, Any] | None:
        """Fingerprint the run; None (skip every later task) when it is unchanged."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.scheduled import emr_check_unchanged

        try:
            return emr_check_unchanged(plan, dict(context["params"]))
        except (FileNotFoundError, ValueError) as exc:  # e.g. s3:// weights that do not exist
            raise AirflowFailException(str(exc)) from exc

    @task
    def check_budget(dataset: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Estimate the run's cost before any cluster exists; fail when over max_cost_usd."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.budget import BudgetExceededError
        from include.scheduled import emr_check_budget

        try:
            return emr_check_budget(dataset, dict(context["params"]))
        except (BudgetExceededError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def upload_dataset(plan: dict[str, Any]) -> dict[str, Any]:
        """Mirror the dataset to S3 (idempotent); return the upload summary."""
        from pathlib import Path

        from include.staging import upload_dataset

        if plan.get("dataset_uri"):
            print(f"dataset {plan['dataset_uri']} is read in place: nothing to upload")
            return {"uri": plan["dataset_uri"], "uploaded": 0, "skipped": 0, "in_place": True}

        summary = upload_dataset(
            Path(plan["dataset_dir"]),
            plan["bucket"],
            plan["dataset_prefix"],
            aws_conn_id=plan["aws_conn_id"],
            pack=plan["pack_dataset"],
        )
        return summary.to_dict()

    @task
    def upload_job_package(plan: dict[str, Any]) -> dict[str, Any]:
        """Upload the Spark job (zip + entry script), bootstrap, requirements, weights file."""
        from include.emr import upload_job_package

        return upload_job_package(plan)

    @task
    def download_results(plan: dict[str, Any], cluster_id: str | None) -> str:
        """Download metrics, PCA (and optionally features) and cluster.json; return the folder."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.emr import ResultsIncompleteError, download_results

        try:
            return download_results(plan, cluster_id=cluster_id)
        except ResultsIncompleteError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def build_report(run_dir: str, estimate: dict[str, Any] | None = None) -> str:
        """Write the run's HTML report (with the pre-run cost estimate) beside its results."""
        from pathlib import Path

        from include.report import build_report
        from include.scheduled import write_estimate

        write_estimate(Path(run_dir), estimate)
        return str(build_report(Path(run_dir)))

    @task(outlets=[PCA_ASSET, FEATURES_ASSET])
    def publish_results(
        plan: dict[str, Any], run_dir: str, run_info: dict[str, Any], **context: Any
    ) -> None:
        """Manifest, fingerprint, estimate and report beside the S3 results; the
        last-success record; Asset events with the run's counts and fingerprint."""
        from include.scheduled import emr_publish

        dag_run = context["dag_run"]
        extras = emr_publish(plan, run_dir, run_info, dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        context["outlet_events"][PCA_ASSET].extra = extras["pca"]
        context["outlet_events"][FEATURES_ASSET].extra = extras["features"]

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run_if_any_task_failed() -> None:
        """Runs only when a task failed: makes the run end failed (terminate is ALL_DONE)."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed; the cluster was terminated")

    plan = validate_params()
    dataset = validate_dataset(plan)
    run_info = skip_if_unchanged(plan)
    estimate = check_budget(dataset)
    staged_dataset = upload_dataset(plan)
    staged_code = upload_job_package(plan)
    create_emr_cluster = EmrCreateClusterOperator(
        task_id="create_emr_cluster",
        emr_conn_id=None,
        aws_conn_id=plan["aws_conn_id"],
        region_name=plan["region"],
        job_flow_overrides=plan["job_flow_overrides"],
        wait_for_completion=True,
        waiter_delay=plan["poke_interval"],
        waiter_max_attempts=plan["create_max_attempts"],
        deferrable=plan["deferrable"],
    )
    add_feature_step = EmrAddStepOnceOperator(
        task_id="add_feature_step",
        aws_conn_id=plan["aws_conn_id"],
        region_name=plan["region"],
        job_flow_id=create_emr_cluster.output,
        steps=plan["steps"],
    )
    wait_for_feature_step = EmrStepSensorWithLogs(
        task_id="wait_for_feature_step",
        aws_conn_id=plan["aws_conn_id"],
        region_name=plan["region"],
        job_flow_id=create_emr_cluster.output,
        step_id=add_feature_step.output,
        log_uri=plan["log_uri"],
        wait=plan["wait"],
        deferrable=plan["deferrable"],
    )
    results = download_results(plan, create_emr_cluster.output)
    report = build_report(results, estimate)
    published = publish_results(plan, results, run_info)
    terminate_emr_cluster = EmrTerminateRunClustersOperator(
        task_id="terminate_emr_cluster",
        aws_conn_id=plan["aws_conn_id"],
        region_name=plan["region"],
        job_flow_id=create_emr_cluster.output,
        trigger_rule=TriggerRule.ALL_DONE,
    )

    chain(
        plan,
        dataset,
        run_info,
        estimate,
        [staged_dataset, staged_code],
        create_emr_cluster,
        add_feature_step,
        wait_for_feature_step,
        results,
        report,
        published,
    )
    # The cluster is not needed to download results: it is terminated as soon as the step
    # is over (or anything before it failed), not after the download.
    wait_for_feature_step >> terminate_emr_cluster
    [
        plan,
        dataset,
        staged_dataset,
        staged_code,
        create_emr_cluster,
        add_feature_step,
        wait_for_feature_step,
        results,
        report,
        terminate_emr_cluster,
        run_info,
        estimate,
        published,
    ] >> (fail_run_if_any_task_failed())


fruits_emr_pipeline()
