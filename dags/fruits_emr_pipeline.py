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

from typing import Any

from airflow.sdk import TriggerRule, chain, dag, task

from include.config import emr_schedule
from include.emr.operators import (
    EmrAddStepOnceOperator,
    EmrCreateClusterOperator,
    EmrStepSensorWithLogs,
    EmrTerminateRunClustersOperator,
)
from include.emr_common.tasks import (
    build_report,
    publish_results,
    upload_dataset,
    upload_job_package,
    validate_dataset,
)
from include.params.cluster import emr_params
from include.params.defaults import DAG_START_DATE, EMR_RETRY_DELAY, dag_default_args


@dag(
    dag_id="fruits_emr_pipeline",
    schedule=emr_schedule(),
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_default_args(retry_delay=EMR_RETRY_DELAY),
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

        from include.config import REPO_ROOT, load_config
        from include.emr.dataset_steps import plan_for_s3_dataset
        from include.emr.plan import build_run_plan
        from include.params.cluster import emr_settings_from_params, pack_on_cluster_setting
        from include.params.common import dataset_uri_setting
        from include.staging.wheelhouse import digest_of_files

        try:
            settings = emr_settings_from_params(dict(context["params"]))
            config = load_config()
            dataset_uri = dataset_uri_setting(dict(context["params"]), config.dataset_uri)
            pack_on_cluster = pack_on_cluster_setting(dict(context["params"]))
        except ValueError as exc:
            raise AirflowFailException(f"Invalid run settings: {exc}") from exc
        dag_run = context["dag_run"]
        plan = build_run_plan(
            settings,
            config,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            wheelhouse_digest=digest_of_files(REPO_ROOT, settings.job.runtime)
            if settings.wheelhouse
            else None,
        )
        if dataset_uri:  # read in place: the step's --input is the URI, nothing is uploaded
            plan = plan_for_s3_dataset(plan, dataset_uri, pack_on_cluster=pack_on_cluster)
        if plan["weights_file"] and not Path(plan["weights_file"]).is_file():
            raise AirflowFailException(
                f"Invalid run settings: weights file {plan['weights_file']} does not exist"
            )
        return plan

    @task
    def preflight(plan: dict[str, Any]) -> list[dict[str, Any]]:
        """Check roles, subnet, instance type, vCPU quota, bucket and network before paying."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.sdk.exceptions import AirflowFailException

        from include.infra.preflight import ClusterRequest, failures, run_preflight

        def client(service: str) -> Any:
            return AwsBaseHook(
                aws_conn_id=plan["aws_conn_id"], region_name=plan["region"], client_type=service
            ).conn

        request = ClusterRequest.from_overrides(
            plan["job_flow_overrides"],
            region=plan["region"],
            bucket=plan["bucket"],
            install_from_s3_only=plan["wheelhouse"] is not None,
        )
        checks = run_preflight(client, request)
        for check in checks:
            print(check.line())
        failed = failures(checks)
        if failed:
            raise AirflowFailException(
                "preflight failed, nothing was created: " + "; ".join(c.line() for c in failed)
            )
        return [c.to_dict() for c in checks]

    @task.short_circuit
    def skip_if_unchanged(plan: dict[str, Any], **context: Any) -> dict[str, Any] | None:
        """Fingerprint the run; None (skip every later task) when it is unchanged."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.reruns.skip import emr_check_unchanged

        try:
            return emr_check_unchanged(plan, dict(context["params"]))
        except (FileNotFoundError, ValueError) as exc:  # e.g. s3:// weights that do not exist
            raise AirflowFailException(str(exc)) from exc

    @task
    def check_budget(dataset: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Estimate the run's cost before any cluster exists; fail when over max_cost_usd."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.costs.budget import BudgetExceededError, emr_check_budget

        try:
            return emr_check_budget(dataset, dict(context["params"]))
        except (BudgetExceededError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def plan_cluster_steps(plan: dict[str, Any], dataset: dict[str, Any]) -> list[dict[str, Any]]:
        """The steps to add: the feature step, after a packing step when an S3 dataset is
        to be packed on the cluster and this listing's shards do not exist yet."""
        from include.emr.dataset_steps import packed_dataset_uri, steps_for_s3_dataset
        from include.staging.s3 import make_s3_hook

        ready = False
        if plan.get("pack_s3_dataset") and dataset.get("layout") == "images":
            dest = packed_dataset_uri(plan, dataset["listing_digest"])
            ready = make_s3_hook(plan["aws_conn_id"]).check_for_key(f"{dest}_SUCCESS")
        steps, why = steps_for_s3_dataset(plan, dataset, packed_ready=ready)
        print(why)
        return steps

    @task
    def stage_wheelhouse(plan: dict[str, Any]) -> dict[str, Any] | None:
        """Stage the nodes' wheels in S3 (reused while requirements/constraints are unchanged)."""
        import tempfile

        from airflow.sdk.exceptions import AirflowFailException

        from include.config import REPO_ROOT
        from include.emr_common.runtimes import RUNTIME_ARCHES
        from include.staging import wheelhouse
        from include.staging.s3 import make_s3_hook

        if plan["wheelhouse"] is None:
            print("wheelhouse off: the nodes install from PyPI")
            return None
        runtime = plan["job"]["runtime"]
        with tempfile.TemporaryDirectory(prefix="fruits-node-reqs-") as tmp:
            requirements, constraints = wheelhouse.node_requirement_files(REPO_ROOT, runtime, tmp)
            staged = wheelhouse.stage_wheelhouse(
                make_s3_hook(plan["aws_conn_id"]),
                plan["bucket"],
                plan["wheelhouse"]["key_prefix"],
                requirements=requirements,
                constraints=constraints,
                download=wheelhouse.pip_download,  # looked up now: tests swap the downloader
                # Only the CPUs the runtime has wheels for (keras: x86_64).
                arches=RUNTIME_ARCHES[runtime],
            )
        if staged.digest != plan["wheelhouse"]["digest"]:
            raise AirflowFailException(
                f"the node requirements changed during the run (wheelhouse {staged.digest}, "
                f"plan {plan['wheelhouse']['digest']}): trigger a new run"
            )
        try:
            wheelhouse.check_fits(staged.to_dict(), plan["root_volume_gib"])
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        print(f"wheelhouse {staged.uri}: {'reused' if staged.reused else 'staged'}")
        return staged.to_dict()

    @task
    def download_results(plan: dict[str, Any], cluster_id: str | None) -> str:
        """Download metrics, PCA (and optionally features) and cluster.json; return the folder."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.emr_common.transfer import ResultsIncompleteError, download_results

        try:
            return download_results(plan, cluster_id=cluster_id)
        except ResultsIncompleteError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run_if_any_task_failed() -> None:
        """Runs only when a task failed: makes the run end failed (terminate is ALL_DONE)."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed; the cluster was terminated")

    plan = validate_params()
    checked = preflight(plan)
    dataset = validate_dataset(plan)
    run_info = skip_if_unchanged(plan)
    estimate = check_budget(dataset)
    staged_dataset = upload_dataset(plan)
    staged_code = upload_job_package(plan)
    staged_wheels = stage_wheelhouse(plan)
    steps = plan_cluster_steps(plan, dataset)
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
        steps=steps,
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
        checked,
        dataset,
        run_info,
        estimate,
        [staged_dataset, staged_code, staged_wheels, steps],
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
        checked,
        dataset,
        staged_dataset,
        staged_code,
        staged_wheels,
        steps,
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
