"""A failed EMR Serverless job run, explained: its stateDetails and its driver's log tails.

EMR Serverless writes a job run's logs under the run's ``s3MonitoringConfiguration``
log URI: ``<logUri>/applications/<app id>/jobs/<job run id>/SPARK_DRIVER/stderr.gz``
(and ``stdout.gz``; EMR Serverless User Guide, "Logging and monitoring"). The tails are
read, and secrets masked, with the cluster DAG's helpers (:mod:`include.emr_common.logs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from include.emr_common.logs import (
    LOG_WAIT_POLL_SECONDS,
    STDERR_TAIL_LINES,
    STDOUT_TAIL_LINES,
    log_tail_lines,
    redact,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook


def driver_log_uri(log_uri: str, application_id: str, job_run_id: str, name: str) -> str:
    """``<log_uri>/applications/<app>/jobs/<job run>/SPARK_DRIVER/<name>.gz``."""
    base = f"{log_uri.rstrip('/')}/applications/{application_id}/jobs/{job_run_id}"
    return f"{base}/SPARK_DRIVER/{name}.gz"


def describe_job_run_failure(
    job_run: Mapping[str, Any],
    *,
    s3_hook: S3Hook,
    log_uri: str,
    wait_seconds: float = 0.0,
    poll_seconds: float = LOG_WAIT_POLL_SECONDS,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """A readable account of a failed job run: state, stateDetails, driver stderr/stdout."""
    app_id, run_id = str(job_run.get("applicationId")), str(job_run.get("jobRunId"))
    lines = [f"EMR Serverless job run {run_id} ({job_run.get('name')}) is {job_run.get('state')}"]
    if job_run.get("stateDetails"):
        lines.append(f"  stateDetails: {redact(str(job_run['stateDetails']))}")
    lines += log_tail_lines(
        s3_hook,
        [
            (name, driver_log_uri(log_uri, app_id, run_id, name), count)
            for name, count in (("stderr", STDERR_TAIL_LINES), ("stdout", STDOUT_TAIL_LINES))
        ],
        hint="EMR Serverless uploads driver logs while and after the job runs",
        wait_seconds=wait_seconds,
        poll_seconds=poll_seconds,
        log=log,
        sleep=sleep,
        clock=clock,
    )
    return "\n".join(lines)
