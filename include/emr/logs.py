"""A failed EMR step, explained: FailureDetails and the tail of its ``stderr.gz``.

:func:`describe_step_failure` reads a failed step's FailureDetails and the tail of its
``stderr.gz`` from the EMR log URI, for the Airflow task log; :func:`redact` masks things
that look like credentials first.
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


def step_stderr_uri(log_uri: str, cluster_id: str, step_id: str) -> str:
    """Where EMR puts a step's stderr: ``<log_uri>/<cluster_id>/steps/<step_id>/stderr.gz``."""
    return f"{log_uri.rstrip('/')}/{cluster_id}/steps/{step_id}/stderr.gz"


def describe_step_failure(
    step: Mapping[str, Any],
    *,
    s3_hook: S3Hook,
    log_uri: str,
    cluster_id: str,
    wait_seconds: float = 0.0,
    poll_seconds: float = LOG_WAIT_POLL_SECONDS,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """A readable account of a failed step: state, FailureDetails and the stderr tail.

    With ``wait_seconds``, first waits (bounded) for the stderr to reach S3
    (:func:`wait_for_log`).
    """
    status = step.get("Status", {})
    lines = [f"EMR step {step.get('Id')} ({step.get('Name')}) is {status.get('State')}"]
    details = status.get("FailureDetails") or {}
    for field in ("Reason", "Message", "LogFile"):
        if details.get(field):
            lines.append(f"  {field}: {redact(str(details[field]))}")
    reason = (status.get("StateChangeReason") or {}).get("Message")
    if reason:
        lines.append(f"  StateChangeReason: {redact(str(reason))}")
    log_file = str(details.get("LogFile") or "")
    uri = (
        log_file
        if log_file.startswith("s3://") and log_file.endswith(".gz")
        else step_stderr_uri(log_uri, cluster_id, str(step.get("Id")))
    )
    # spark-submit merges a PySpark driver's stderr into its stdout (PythonRunner): the
    # job's own traceback / "error:" line is in stdout.gz, the JVM's log in stderr.gz.
    stdout_uri = uri.rsplit("/", 1)[0] + "/stdout.gz"
    lines += log_tail_lines(
        s3_hook,
        [("stderr", uri, STDERR_TAIL_LINES), ("stdout", stdout_uri, STDOUT_TAIL_LINES)],
        hint="EMR uploads step logs every ~5 minutes",
        wait_seconds=wait_seconds,
        poll_seconds=poll_seconds,
        log=log,
        sleep=sleep,
        clock=clock,
    )
    return "\n".join(lines)
