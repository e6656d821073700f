"""Task bodies of the Serverless DAG: the guards, the job's environment, the results.

The guards are the cluster DAG's (:mod:`include.reruns.skip`, :mod:`include.costs.budget`)
with the Serverless settings:
the fingerprint records platform ``emr-serverless``, the release and the architecture, and
the budget is priced per vCPU/GB-hour
(:func:`include.costs.serverless.estimate_serverless_cost`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


def check_unchanged(plan: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
    """None: skip (an earlier run holds the same results); else the run's fingerprint data."""
    from include.params.common import guard_settings_from_params
    from include.params.serverless import serverless_settings_from_params
    from include.reruns.skip import s3_check_unchanged

    settings = serverless_settings_from_params(params)
    guards = guard_settings_from_params(params, emr=True)
    return s3_check_unchanged(
        plan,
        settings.job,
        force=guards.force,
        environment={
            "platform": "emr-serverless",
            "release_label": settings.release_label,
            "architecture": settings.architecture,
        },
    )


def check_budget(
    dataset: Mapping[str, Any], params: Mapping[str, Any], *, region: str
) -> dict[str, Any]:
    """The run's estimate; raises ``BudgetExceededError`` when over ``max_cost_usd``."""
    from include.costs.budget import check_budget as refuse_over_budget
    from include.costs.budget import images_of, log_cache_upper_bound, runtime_of
    from include.costs.serverless import estimate_serverless_cost
    from include.params.common import guard_settings_from_params
    from include.params.serverless import serverless_settings_from_params

    settings = serverless_settings_from_params(params)
    guards = guard_settings_from_params(params, emr=True)
    estimate = estimate_serverless_cost(
        images=images_of(dataset, settings.job),
        runtime=runtime_of(settings.job),
        sizing=settings.sizing.as_dict(),
        region=region,
        architecture=settings.architecture,
        poke_interval_s=settings.poke_interval_seconds,
    )
    log.info("%s (budget $%.2f)", estimate.describe(), guards.max_cost_usd)
    log_cache_upper_bound(settings.feature_cache)
    assert guards.max_cost_usd is not None
    refuse_over_budget(estimate, guards.max_cost_usd)  # type: ignore[arg-type]
    return {
        **estimate.to_dict(),
        "max_cost_usd": guards.max_cost_usd,
        "upper_bound_feature_cache": settings.feature_cache,
    }


def stage_job_environment(plan: Mapping[str, Any]) -> dict[str, Any]:
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
    plan: Mapping[str, Any],
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
    says so instead of a cost).
    """
    from include.costs.serverless import JOB_RUN_FILE
    from include.emr_common.transfer import download_results as download

    saved = dict(finished) if finished else _read_job_run(plan, application_id, job_run_id)
    saved.update({"region": plan["region"], "CapturedAt": datetime.now(UTC).isoformat()})
    if not saved.get("jobRun"):
        saved["unavailable"] = (
            f"job run {job_run_id} of application {application_id} could not be read after "
            "it ended (deleted by the teardown before the download)"
        )
    return download(plan, cluster_id=None, extra_json={JOB_RUN_FILE: saved})


def _read_job_run(plan: Mapping[str, Any], application_id: str, job_run_id: str) -> dict[str, Any]:
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
