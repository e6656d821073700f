"""
### Fruits-360 features on EMR Serverless

The same job as `fruits_emr_pipeline` (MobileNetV2 features + PCA, same entry script, zip
and arguments), on **EMR Serverless**: no cluster to forget. An application starts workers
per job run, stops itself when idle and bills per vCPU-, memory- and storage-second.

1. `validate_params` — checks the trigger form (worker sizes against AWS's allowed ones,
   the runtime against the architecture) and plans the run; `preflight` checks the bucket
   and the job runtime role (`FRUITS_SERVERLESS_JOB_ROLE`).
2. `validate_dataset`, `skip_if_unchanged`, `check_budget` (per vCPU/GB-hour) — as in the
   cluster DAG.
3. `upload_dataset`, `upload_job_package` (the cluster DAG's tasks) and
   `stage_job_environment` (the job's packed Python environment, built once and reused).
4. `create_emr_serverless_application` — emr-7.x, SPARK, X86_64 or ARM64, auto-stop after
   `idle_timeout_minutes` (the backstop), a `maximumCapacity` of exactly the run's workers,
   tagged Project/dag_id/run_id; or, with `reuse_application`, the shared application of
   the same configuration (found by name and tags).
5. `start_job_run` → `wait_for_job_run` (a failed job run's driver stderr tail is shown).
   The job run carries `executionTimeoutMinutes`: EMR Serverless cancels it itself.
6. `download_results` (+ `job_run.json`), `build_report` (billed vCPU/memory/storage-hours,
   priced), `publish_results` (manifest, fingerprint, last success, Asset events).
7. Teardown, whatever failed (trigger rule ALL_DONE): `cancel_job_run` cancels the run's job
   run if it is still running; `delete_emr_serverless_application` stops and deletes an
   application this run created (found by tag if its id never reached XCom); a shared one
   is stopped, never deleted.
8. `fail_run_if_any_task_failed` makes the run end *failed* when any task failed.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, TriggerRule, chain, task

from include.config import serverless_schedule
from include.costs.budget import check_run_budget
from include.emr_common.tasks import (
    build_report,
    fail_run,
    publish_results,
    upload_dataset,
    upload_job_package,
    validate_dataset,
)
from include.emr_serverless import tasks as serverless_tasks
from include.emr_serverless.operators import (
    EmrServerlessCancelRunJobsOperator,
    EmrServerlessCreateOrReuseApplicationOperator,
    EmrServerlessDeleteRunApplicationsOperator,
    EmrServerlessJobSensorWithLogs,
    EmrServerlessStartJobOnceOperator,
)
from include.infra.dag_preflight import preflight_serverless_run
from include.params.defaults import DAG_START_DATE, EMR_RETRY_DELAY, dag_default_args
from include.params.plan_types import (
    JobEnvironment,
    RunInfo,
    ServerlessPlan,
    ServerlessPreflight,
)
from include.params.serverless import serverless_params
from include.reruns.skip import skip_if_unchanged as skip_unchanged_run

TEARDOWN_WAITER = {"waiter_delay": 15, "waiter_max_attempts": 60}
"""Stop/delete/cancel waits of the teardown: every 15 s, 15 minutes at most."""

with DAG(
    dag_id="fruits_emr_serverless_pipeline",
    schedule=serverless_schedule(),
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_default_args(retry_delay=EMR_RETRY_DELAY),
    params=serverless_params(),
    tags=["fruits", "emr", "emr-serverless", "spark", "features"],
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=True)
    def validate_params(**context: Any) -> ServerlessPlan:
        """Validate the Params and the configuration; return the run's plan."""
        run = context["dag_run"]
        return serverless_tasks.validate_params(
            context["params"], dag_id=run.dag_id, run_id=run.run_id
        )

    @task(multiple_outputs=True)
    def preflight(plan: ServerlessPlan) -> ServerlessPreflight:
        """Check the bucket and the job runtime role before paying; return the role's ARN."""
        return preflight_serverless_run(plan)

    @task.short_circuit
    def skip_if_unchanged(plan: ServerlessPlan, **context: Any) -> RunInfo | None:
        """Fingerprint the run; None (skip every later task) when it is unchanged."""
        return skip_unchanged_run(
            "emr-serverless", context["params"], plan=plan, run_id=context["run_id"]
        )

    @task
    def check_budget(
        plan: ServerlessPlan, dataset: dict[str, Any], **context: Any
    ) -> dict[str, Any]:
        """Estimate the run's cost (per vCPU/GB-hour) before anything runs."""
        return check_run_budget("emr-serverless", dataset, context["params"], region=plan["region"])

    @task(multiple_outputs=True)
    def stage_job_environment(plan: ServerlessPlan) -> JobEnvironment:
        """The job's packed Python environment in S3 (reused while unchanged) + job driver."""
        return serverless_tasks.stage_job_environment(plan)

    @task
    def download_results(
        plan: ServerlessPlan, application_id: str, job_run_id: str, finished: Any = None
    ) -> str:
        """Download metrics, PCA (and optionally features) and job_run.json (``finished``:
        the job run and application the wait read, before the teardown); return the folder."""
        return serverless_tasks.download_results(
            plan, application_id=application_id, job_run_id=job_run_id, finished=finished
        )

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run_if_any_task_failed(**context: Any) -> None:
        """Runs only when a task failed: makes the run end failed (the teardown is ALL_DONE)."""
        application_id = context["ti"].xcom_pull(task_ids="create_emr_serverless_application")
        fail_run(
            "EMR Serverless application",
            application_id,
            teardown="cancel_job_run and delete_emr_serverless_application",
        )

    plan = validate_params()
    aws = {"aws_conn_id": plan["aws_conn_id"], "region_name": plan["region"]}
    checked = preflight(plan)
    dataset = validate_dataset(plan)
    run_info = skip_if_unchanged(plan)
    estimate = check_budget(plan, dataset)
    staged_env = stage_job_environment(plan)
    create_application = EmrServerlessCreateOrReuseApplicationOperator(
        task_id="create_emr_serverless_application",
        application=plan["application"],
        identity_tags=plan["application_tags"],
        waiter_delay=5,
        waiter_max_attempts=60,
        **aws,
    )
    start_job_run = EmrServerlessStartJobOnceOperator(
        task_id="start_job_run",
        application_id=create_application.output,
        execution_role_arn=checked["job_role_arn"],
        job_driver=staged_env["job_driver"],
        configuration_overrides=plan["job_run_overrides"],
        name=plan["job_run_name"],
        config=plan["job_run_config"],
        waiter_delay=10,
        waiter_max_attempts=60,
        **aws,
    )
    wait_for_job_run = EmrServerlessJobSensorWithLogs(
        task_id="wait_for_job_run",
        application_id=create_application.output,
        job_run_id=start_job_run.output,
        log_uri=plan["log_uri"],
        wait=plan["wait"],
        deferrable=plan["deferrable"],
        **aws,
    )
    results = download_results(
        plan, create_application.output, start_job_run.output, wait_for_job_run.output
    )
    cancel_job_run = EmrServerlessCancelRunJobsOperator(
        task_id="cancel_job_run",
        application_id=create_application.output,
        job_run_id=start_job_run.output,
        job_run_name=plan["job_run_name"],
        application_tags=plan["application_tags"],
        trigger_rule=TriggerRule.ALL_DONE,
        **TEARDOWN_WAITER,
        **aws,
    )
    delete_application = EmrServerlessDeleteRunApplicationsOperator(
        task_id="delete_emr_serverless_application",
        application_id=create_application.output,
        application_tags=plan["application_tags"],
        trigger_rule=TriggerRule.ALL_DONE,
        **TEARDOWN_WAITER,
        **aws,
    )

    chain(
        # RUN SETUP: every check before anything costs money, then the run's inputs in S3
        plan,
        checked,
        dataset,
        run_info,
        estimate,
        [upload_dataset(plan), upload_job_package(plan), staged_env],
        # RUN BODY: the application runs the job; its results come back, are reported, published
        create_application,
        start_job_run,
        wait_for_job_run,
        results,
        build_report(results, estimate),
        publish_results(plan, results, run_info),
    )
    # RUN TEARDOWN: whatever happened (ALL_DONE), as soon as the wait is over or anything
    # before it failed: nothing runs on the application after the job run.
    chain(wait_for_job_run, cancel_job_run, delete_application)
    # The watcher, downstream of every task: a failed task fails the run even though the
    # teardown (ALL_DONE) succeeded.
    list(dag.tasks) >> fail_run_if_any_task_failed()
