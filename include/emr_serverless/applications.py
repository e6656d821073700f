"""This project's EMR Serverless applications: find them by tag, tell if in use, remove them.

The sweeper DAG (``sweep_serverless_applications``) and ``python -m include.infra status``
use these with a boto3 ``emr-serverless`` client (the provider's ``EmrServerlessHook.conn``
in a task). Applications are recognised by their ``Project`` tag only, never by name.

``ListApplications`` returns no tags, so each listed application is read with
``GetApplication`` (which does); the state filter keeps that to the live ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

LIVE_APPLICATION_STATES = ("CREATING", "CREATED", "STARTING", "STARTED", "STOPPING", "STOPPED")
"""Every state but TERMINATED (a deleted application): what still exists."""

STOPPABLE_STATES = ("STARTING", "STARTED")
"""States in which an application must be stopped before it can be deleted."""

DELETABLE_STATES = ("CREATED", "STOPPED")
"""``DeleteApplication`` accepts only these states."""

# The job-run states, the one list the project keeps (botocore's JobRunState enum). QUEUED:
# with job concurrency and queuing (on by default from emr-7.3.0) a run waits QUEUED while
# the application's maxConcurrentRuns are taken (EMR Serverless User Guide, "Job
# concurrency and queuing"; "Job run states"). The provider's EmrServerlessHook lists
# no QUEUED (providers-amazon 9.39.0 JOB_INTERMEDIATE_STATES): do not use its list.
WAITING_JOB_RUN_STATES = ("SUBMITTED", "PENDING", "SCHEDULED", "QUEUED")
"""A job run accepted but not yet running."""
CANCELLABLE_JOB_RUN_STATES = (*WAITING_JOB_RUN_STATES, "RUNNING")
"""A job run that ``CancelJobRun`` stops (one CANCELLING already is only waited for)."""
ACTIVE_JOB_RUN_STATES = (*CANCELLABLE_JOB_RUN_STATES, "CANCELLING")
"""Job-run states of work that is not over: an application with one is in use."""
ENDED_JOB_RUN_STATES = ("SUCCESS", "FAILED", "CANCELLED")
"""A job run that is over."""


def application_tags(application: Mapping[str, Any]) -> dict[str, str]:
    """The application's tags (``GetApplication`` returns them as a plain mapping)."""
    return dict(application.get("tags") or {})


def find_applications(
    client: Any,
    *,
    tags: Mapping[str, str],
    states: Iterable[str] = LIVE_APPLICATION_STATES,
    idle_since_before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Applications in ``states`` carrying every tag in ``tags`` (``GetApplication`` shapes).

    With ``idle_since_before``, only those both created and last updated before it: an
    application changed recently (started, stopped, updated) is not old. Oldest first.
    """
    found = []
    for page in client.get_paginator("list_applications").paginate(states=list(states)):
        for summary in page.get("applications", []):
            if idle_since_before is not None and _last_change(summary) >= idle_since_before:
                continue
            try:
                application = client.get_application(applicationId=summary["id"])["application"]
            except ClientError as exc:
                if _code(exc) == "ResourceNotFoundException":
                    continue  # deleted between the listing and now
                raise
            app_tags = application_tags(application)
            if all(app_tags.get(key) == value for key, value in tags.items()):
                found.append(application)
    return sorted(found, key=lambda a: a["createdAt"])


def _last_change(application: Mapping[str, Any]) -> datetime:
    created = application["createdAt"]
    return max(created, application.get("updatedAt") or created)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def active_job_runs(client: Any, application_id: str) -> list[dict[str, Any]]:
    """The application's job runs that are not over (``ACTIVE_JOB_RUN_STATES``), oldest first."""
    runs: list[dict[str, Any]] = []
    try:
        for page in client.get_paginator("list_job_runs").paginate(
            applicationId=application_id, states=list(ACTIVE_JOB_RUN_STATES)
        ):
            runs.extend(page.get("jobRuns", []))
    except ClientError as exc:
        # moto answers ResourceNotFound for an application that never ran a job (AWS returns
        # an empty list); for a deleted application it means the same: nothing runs there.
        if _code(exc) != "ResourceNotFoundException":
            raise
    return sorted(runs, key=lambda r: r["createdAt"])


def application_in_use(
    client: Any,
    application: Mapping[str, Any],
    get_dagrun_state: Callable[[str, str], str],
    *,
    log: Callable[[str], None] = print,
) -> bool:
    """True when a job run is not over, or the DAG run of its tags is still queued/running."""
    from include.emr_common.runs import tagged_run_is_active

    app_id = application["applicationId"]
    runs = active_job_runs(client, app_id)
    if runs:
        states = ", ".join(f"{r['id']} {r['state']}" for r in runs)
        log(f"application {app_id}: job run(s) not over ({states}): left alone")
        return True
    return tagged_run_is_active(
        application_tags(application), get_dagrun_state, what=f"application {app_id}", log=log
    )


def stop_and_delete(
    client: Any,
    application: Mapping[str, Any],
    *,
    wait_stopped: Callable[[str], None],
    log: Callable[[str], None] = print,
) -> str:
    """Stop the application if it runs, wait until STOPPED, delete it; return what was done.

    ``wait_stopped(application_id)`` blocks until the application is STOPPED (the provider's
    ``serverless_app_stopped`` waiter in a task): stopping takes time on AWS. Raises
    ValueError for a state that cannot be deleted now (CREATING), ClientError from AWS.
    """
    app_id = application["applicationId"]
    state = application["state"]
    if state in STOPPABLE_STATES:
        client.stop_application(applicationId=app_id)
        log(f"application {app_id}: {state}, stop requested")
        wait_stopped(app_id)
    elif state == "STOPPING":
        wait_stopped(app_id)
    elif state not in DELETABLE_STATES:
        raise ValueError(f"application {app_id} is {state}: it cannot be deleted yet")
    client.delete_application(applicationId=app_id)
    log(f"application {app_id}: deleted")
    return "stopped and deleted" if state in (*STOPPABLE_STATES, "STOPPING") else "deleted"


def run_label(application: Mapping[str, Any]) -> str:
    """``dag_id/run_id`` of the run that created the application (its tags), or ``-``."""
    tags = application_tags(application)
    if tags.get("dag_id") and tags.get("run_id"):
        return f"{tags['dag_id']}/{tags['run_id']}"
    return "-"


class SweepError(RuntimeError):
    """Some stale applications could not be removed (the message names each and why)."""


def sweep_applications(
    client: Any,
    *,
    project_tag: str,
    idle_since_before: datetime,
    get_dagrun_state: Callable[[str, str], str],
    wait_stopped: Callable[[str], None],
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict[str, str]]:
    """Stop and delete this project's applications idle since before the cutoff and not in use.

    Returns one ``{"id", "name", "state", "action"}`` per stale application (``action`` is
    "would stop and delete"/"would delete" with ``dry_run``). Every application is tried;
    if any failed, raises :class:`SweepError` naming each failure after the others are done.
    """
    stale = [
        app
        for app in find_applications(
            client, tags={"Project": project_tag}, idle_since_before=idle_since_before
        )
        if not application_in_use(client, app, get_dagrun_state, log=log)
    ]
    report: list[dict[str, str]] = []
    failed: list[str] = []
    for app in stale:
        entry = {"id": app["applicationId"], "name": app.get("name", ""), "state": app["state"]}
        if app["state"] == "CREATING":
            log(f"application {entry['id']}: still CREATING, left for the next sweep")
            continue
        if dry_run:
            verb = (
                "stop and delete" if app["state"] in (*STOPPABLE_STATES, "STOPPING") else "delete"
            )
            entry["action"] = f"would {verb}"
            log(f"dry run: application {entry['id']} ({entry['name']}, {entry['state']}): {verb}")
        else:
            try:
                entry["action"] = stop_and_delete(client, app, wait_stopped=wait_stopped, log=log)
            except Exception as exc:  # one failure must not keep the others alive
                detail = exc
                if isinstance(exc, ClientError):
                    error = exc.response.get("Error", {})
                    detail = f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
                failed.append(f"{entry['id']} ({entry['name']}, {entry['state']}): {detail}")
                continue
        report.append(entry)
    if failed:
        raise SweepError(
            f"{len(failed)} of {len(stale)} stale application(s) tagged Project={project_tag} "
            "could not be removed: " + "; ".join(failed)
        )
    return report
