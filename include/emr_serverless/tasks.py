"""Task bodies of the Serverless DAG (``fruits_emr_serverless_pipeline``): the Params
checked and planned, the job's environment, the results (the preflight:
:mod:`include.infra.dag_preflight`). Plain functions,
called by the DAG's tasks in a line or two; bad input fails with ``AirflowFailException``
(no retry). The bodies both EMR DAGs share are in :mod:`include.emr_common.tasks`.

The guards are the cluster DAG's (:func:`include.reruns.skip.skip_if_unchanged`,
:func:`include.costs.budget.check_run_budget`) with the Serverless settings: the fingerprint
records platform ``emr-serverless``, the release and the architecture, and the budget is
priced per vCPU/GB-hour (:func:`include.costs.serverless.estimate_serverless_cost`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.emr_common.tasks import check_weights_file
from include.params.plan_types import JobEnvironment, ServerlessPlan

log = logging.getLogger(__name__)


def validate_params(params: Mapping[str, Any], *, dag_id: str, run_id: str) -> ServerlessPlan:
    """Validate the Params and the configuration; return the run's plan."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.config import load_config
    from include.emr_serverless.plan import build_serverless_run_plan
    from include.params.common import dataset_uri_setting
    from include.params.serverless import serverless_settings_from_params

    try:
        settings = serverless_settings_from_params(dict(params))
        config = load_config()
        dataset_uri = dataset_uri_setting(dict(params), config.dataset_uri)
    except ValueError as exc:
        raise AirflowFailException(f"Invalid run settings: {exc}") from exc
    plan = build_serverless_run_plan(
        settings, config, dag_id=dag_id, run_id=run_id, dataset_uri=dataset_uri
    )
    check_weights_file(plan)
    return plan


def stage_job_environment(plan: ServerlessPlan) -> JobEnvironment:
    """Stage the job's packed Python environment (built once, reused while unchanged) and
    return it with the job driver that runs on it."""
    from include.config import serverless_local_python_allowed
    from include.emr_serverless.plan import job_driver_for
    from include.staging import serverless_env
    from include.staging.s3 import make_s3_hook

    uri = serverless_env.stage_serverless_env(
        make_s3_hook(plan["aws_conn_id"]),
        bucket=plan["bucket"],
        prefix=plan["env_prefix"],
        runtime=plan["job"]["runtime"],
        arch=plan["architecture"],
        build=serverless_env.build_packed_env,  # looked up now: tests swap the builder
        allow_local_python=serverless_local_python_allowed(),
    )
    print(f"job environment {uri}")
    return {
        "archive_uri": uri,
        "job_driver": job_driver_for(plan, serverless_env.spark_submit_conf(uri)),
    }


def download_results(
    plan: ServerlessPlan,
    *,
    application_id: str,
    job_run_id: str,
    finished: Mapping[str, Any] | None = None,
) -> str:
    """The cluster DAG's download (refused without ``_SUCCESS``), plus ``job_run.json``
    (``GetJobRun`` + ``GetApplication``) for the report's cost section.

    ``finished``: the wait task's ``{"jobRun", "application"}``, read when the job run
    ended. The teardown runs as soon as the wait is over, so without it the application
    (and its job run) may be gone by now: then the results are still downloaded, and
    ``job_run.json`` holds what could be read, and why the rest is missing (the report
    says so instead of a cost). Incomplete results fail without a retry.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.costs.serverless import JOB_RUN_FILE
    from include.emr_common.transfer import ResultsIncompleteError
    from include.emr_common.transfer import download_results as download

    saved = dict(finished) if finished else _read_job_run(plan, application_id, job_run_id)
    saved.update({"region": plan["region"], "CapturedAt": datetime.now(UTC).isoformat()})
    if not saved.get("jobRun"):
        saved["unavailable"] = (
            f"job run {job_run_id} of application {application_id} could not be read after "
            "it ended (deleted by the teardown before the download)"
        )
    try:
        return download(plan, cluster_id=None, extra_json={JOB_RUN_FILE: saved})
    except ResultsIncompleteError as exc:  # a retry would find the same results
        raise AirflowFailException(str(exc)) from exc


def _read_job_run(plan: ServerlessPlan, application_id: str, job_run_id: str) -> ServerlessPlan:
    """``{"jobRun", "application"}`` read now; a part that no longer exists is left out,
    with a warning (never an error: the results do not depend on it)."""
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook
    from botocore.exceptions import ClientError

    conn = EmrServerlessHook(aws_conn_id=plan["aws_conn_id"], region_name=plan["region"]).conn
    saved: dict[str, Any] = {"application": {"architecture": plan["architecture"]}}
    calls = {
        "jobRun": lambda: conn.get_job_run(applicationId=application_id, jobRunId=job_run_id),
        "application": lambda: conn.get_application(applicationId=application_id),
    }
    for key, call in calls.items():
        try:
            saved[key] = call()[key]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            log.warning(
                "%s of application %s could not be read (%s): deleted by the teardown? "
                "The results are downloaded all the same%s",
                "job run " + job_run_id if key == "jobRun" else "the application",
                application_id,
                exc,
                "; the report shows no cost" if key == "jobRun" else "",
            )
    return saved
