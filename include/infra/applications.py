"""The project's EMR Serverless applications for ``status`` and ``cleanup``.

Found by their ``Project`` tag (:mod:`include.emr_serverless.applications`), never by name. An
application bills only while workers run (its job runs, or pre-initialised capacity);
``status`` shows the job runs that are not over beside each application.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from include.config import PROJECT_TAG
from include.costs.cluster import parse_timestamp
from include.emr_serverless.applications import (
    active_job_runs,
    find_applications,
    run_label,
    stop_and_delete,
)
from include.infra.aws import AwsContext
from include.infra.errors import RefusedError

DEFAULT_ARCHITECTURE = "X86_64"
"""What EMR Serverless uses when CreateApplication names no architecture."""


def _age_hours(value: Any, now: datetime) -> float:
    started = parse_timestamp(value)
    return 0.0 if started is None else max(0.0, (now - started).total_seconds() / 3600)


def project_applications(ctx: AwsContext) -> list[dict[str, Any]]:
    """This project's applications that still exist (``GetApplication`` shapes), oldest first."""
    return find_applications(ctx.client("emr-serverless"), tags={"Project": PROJECT_TAG})


def application_status(ctx: AwsContext, now: datetime | None = None) -> list[dict[str, Any]]:
    """One summary per project application, with its job runs that are not over.

    Each is ``{"application_id", "name", "state", "age_hours", "architecture",
    "created_by", "job_runs": [{"job_run_id", "state", "age_hours"}]}``; ``created_by`` is
    the ``dag_id/run_id`` of its tags, or ``-``.
    """
    now = now or datetime.now(UTC)
    client = ctx.client("emr-serverless")
    summaries = []
    for app in project_applications(ctx):
        runs = active_job_runs(client, app["applicationId"])
        summaries.append(
            {
                "application_id": app["applicationId"],
                "name": app.get("name", ""),
                "state": app["state"],
                "age_hours": _age_hours(app["createdAt"], now),
                "architecture": app.get("architecture") or DEFAULT_ARCHITECTURE,
                "created_by": run_label(app),
                "job_runs": [
                    {
                        "job_run_id": run["id"],
                        "state": run["state"],
                        "age_hours": _age_hours(run["createdAt"], now),
                    }
                    for run in runs
                ],
            }
        )
    return summaries


def format_application_status(summaries: list[dict[str, Any]]) -> list[str]:
    """The ``status`` table of applications, each followed by its job runs not over."""
    lines = [f"{'APPLICATION':<18} {'NAME':<28} {'STATE':<9} {'AGE h':>7} {'ARCH':<7} CREATED BY"]
    for s in summaries:
        lines.append(
            f"{s['application_id']:<18} {str(s['name'])[:28]:<28} {s['state']:<9} "
            f"{s['age_hours']:>7.2f} {s['architecture']:<7} {s['created_by']}"
        )
        for run in s["job_runs"]:
            lines.append(
                f"  job run {run['job_run_id']:<18} {run['state']:<10} {run['age_hours']:.2f} h"
            )
        if not s["job_runs"]:
            lines.append("  no job run in progress")
    return lines


def refuse_busy_applications(ctx: AwsContext, applications: list[dict[str, Any]]) -> None:
    """RefusedError if any application has a job run not over (cleanup never cuts one short)."""
    client = ctx.client("emr-serverless")
    busy = []
    for app in applications:
        runs = active_job_runs(client, app["applicationId"])
        if runs:
            states = ", ".join(f"{r['id']} {r['state']}" for r in runs)
            busy.append(f"{app['applicationId']} ({states})")
    if busy:
        raise RefusedError(
            "Serverless application(s) with job runs in progress: "
            + "; ".join(busy)
            + ". Wait for them or cancel them (aws emr-serverless cancel-job-run), then retry"
        )


def remove_applications(ctx: AwsContext, applications: list[dict[str, Any]]) -> list[str]:
    """Stop (waiting for STOPPED) and delete each application; return the ids removed."""
    if not applications:
        return []
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook  # noqa: PLC0415 (lazy: loads airflow and boto3)

    client = ctx.client("emr-serverless")
    # The provider ships the waiter (botocore has none for emr-serverless); it only needs the
    # client, so it runs on the CLI's own session.
    waiter = EmrServerlessHook(aws_conn_id=None).get_waiter("serverless_app_stopped", client=client)
    removed = []
    for app in applications:
        if app["state"] == "CREATING":
            raise RefusedError(
                f"application {app['applicationId']} is still CREATING: retry in a minute"
            )
        stop_and_delete(
            client,
            app,
            wait_stopped=lambda app_id: waiter.wait(
                applicationId=app_id, WaiterConfig={"Delay": 15, "MaxAttempts": 40}
            ),
            log=lambda _: None,
        )
        removed.append(app["applicationId"])
    return removed
