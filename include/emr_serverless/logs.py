"""A failed EMR Serverless job run, explained: its stateDetails and its driver's log tails.

EMR Serverless writes a job run's logs under the run's ``s3MonitoringConfiguration``
log URI: ``<logUri>/applications/<app id>/jobs/<job run id>/SPARK_DRIVER/stderr.gz``
(and ``stdout.gz``; EMR Serverless User Guide, "Logging and monitoring"). The tails are
read, and secrets masked, with the cluster DAG's helpers (:mod:`include.emr.logs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from include.emr.logs import (
    LOG_WAIT_POLL_SECONDS,
    STDERR_TAIL_LINES,
    STDOUT_TAIL_LINES,
    read_log_tail,
    redact,
    wait_for_log,
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
    stderr = driver_log_uri(log_uri, app_id, run_id, "stderr")
    try:
        if wait_seconds > 0:
            wait_for_log(
                s3_hook,
                stderr,
                wait_seconds=wait_seconds,
                poll_seconds=poll_seconds,
                log=log,
                sleep=sleep,
                clock=clock,
            )
    except Exception as exc:  # the failure report must never hide the failure itself
        lines.append(f"  (could not wait for {stderr}: {type(exc).__name__}: {exc})")
    for name, count in (("stderr", STDERR_TAIL_LINES), ("stdout", STDOUT_TAIL_LINES)):
        uri = driver_log_uri(log_uri, app_id, run_id, name)
        try:
            tail = read_log_tail(s3_hook, uri, lines=count)
        except Exception as exc:  # the failure report must never hide the failure itself
            lines.append(f"  (could not read {uri}: {type(exc).__name__}: {exc})")
            continue
        if tail is None:
            lines.append(f"  {name}: {uri} is not there (yet); look again there later")
        else:
            lines.append(f"  last lines of {uri}:")
            lines.extend(f"    {line}" for line in tail.splitlines())
    return "\n".join(lines)
