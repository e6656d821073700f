"""Subclasses of the provider's EMR Serverless operators that add what the stock ones lack.

* :class:`EmrServerlessCreateOrReuseApplicationOperator` — finds the run's (or the shared)
  application by name and tags before creating one: a retry never pays for a second one.
* :class:`EmrServerlessStartJobOnceOperator` — a retry finds the job run it already started.
* :class:`EmrServerlessJobSensorWithLogs` — a failed job run's stateDetails and driver
  stderr tail in the task log; run-time sized waits; no retry of a failed job run.
* :class:`EmrServerlessCancelRunJobsOperator` — teardown: cancels the run's job run while it
  is still queued or running (a failed or timed-out wait, a failed task after the start).
* :class:`EmrServerlessDeleteRunApplicationsOperator` — teardown: stops and deletes the
  applications this run created (also found by tag when the id never reached XCom); a
  shared application is stopped, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.operators.emr import (
    EmrServerlessCreateApplicationOperator,
    EmrServerlessDeleteApplicationOperator,
    EmrServerlessStartJobOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrServerlessJobSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowFailException

from include.config import load_config
from include.emr_common.operators import apply_wait
from include.emr_serverless.applications import (
    ACTIVE_JOB_RUN_STATES,
    CANCELLABLE_JOB_RUN_STATES,
    ENDED_JOB_RUN_STATES,
    find_applications,
)
from include.emr_serverless.logs import describe_job_run_failure
from include.emr_serverless.plan import JOB_RUN_STATES_REUSABLE, SCOPE_TAG

if TYPE_CHECKING:
    from airflow.sdk import Context


def _wait_for_application(
    conn: Any, application_id: str, *, wanted: set[str], delay: float, attempts: int
) -> str:
    """Poll until the application is in ``wanted``; fail at TERMINATED or after ``attempts``."""
    state = ""
    for _ in range(max(1, attempts)):
        app = conn.get_application(applicationId=application_id)["application"]
        state = app["state"]
        if state in wanted:
            return state
        if state == "TERMINATED":
            raise AirflowFailException(
                f"application {application_id} is TERMINATED: {app.get('stateDetails')}"
            )
        time.sleep(delay)
    raise AirflowFailException(
        f"application {application_id} is still {state} after {attempts} checks"
    )


def list_job_runs(conn: Any, application_id: str, states: Iterable[str]) -> list[dict[str, Any]]:
    """Every job run of the application in ``states``; [] for an application that has none
    (or no longer exists: moto raises ResourceNotFound for an application without runs)."""
    try:
        return [
            run
            for page in conn.get_paginator("list_job_runs").paginate(
                applicationId=application_id, states=list(states)
            )
            for run in page["jobRuns"]
        ]
    except conn.exceptions.ResourceNotFoundException:
        return []


def _fallback_region(op: AwsBaseOperator) -> None:
    """Teardown tasks run even when the plan never got made: configuration's conn/region."""
    if not op.region_name:
        config = load_config()
        op.aws_conn_id, op.region_name = config.aws_conn_id, config.region


class EmrServerlessCreateOrReuseApplicationOperator(EmrServerlessCreateApplicationOperator):
    """Create the run's application from ``application`` (a ``CreateApplication`` request,
    templated), or return the one that exists already.

    Looked up by the request's name and ``identity_tags`` (``include.emr_serverless.plan``):
    for a per-run application, the run's own (an earlier attempt created it); for a shared
    one, any with the same configuration. The wait accepts CREATED or STARTED (an
    application the auto-start already started); the application is not started here:
    submitting the job run starts it (``autoStartConfiguration``).
    """

    template_fields = aws_template_fields("application", "identity_tags")

    def __init__(
        self, *, application: Mapping[str, Any], identity_tags: Mapping[str, str], **kwargs: Any
    ) -> None:
        super().__init__(release_label="", job_type="SPARK", **kwargs)
        self.application = application
        self.identity_tags = identity_tags

    def execute(self, context: Context) -> str:
        request = dict(self.application)
        conn = self.hook.conn
        existing = [
            app
            for app in find_applications(conn, tags=self.identity_tags)
            if app.get("name") == request["name"]
        ]
        if existing:
            app = existing[-1]
            self.log.warning(
                "Application %s (%s, %s) exists already: reusing it instead of creating another",
                app["applicationId"],
                request["name"],
                app["state"],
            )
            return app["applicationId"]
        # Same request from the same run -> same token: AWS returns the application a lost
        # response created instead of a second one.
        token = hashlib.sha256(f"{context['run_id']}|{request['name']}".encode()).hexdigest()
        response = conn.create_application(clientToken=token[:64], **request)
        application_id = response["applicationId"]
        self.log.info("EMR Serverless application %s created: %s", request["name"], application_id)
        state = _wait_for_application(
            conn,
            application_id,
            wanted={"CREATED", "STARTED"},
            delay=self.waiter_delay,
            attempts=self.waiter_max_attempts,
        )
        self.log.info("Application %s is %s", application_id, state)
        return application_id


class EmrServerlessStartJobOnceOperator(EmrServerlessStartJobOperator):
    """``EmrServerlessStartJobOperator`` that is safe to retry and never waits itself.

    When the application already has a job run with this ``name`` that is queued, running
    or succeeded (an earlier attempt started it, then failed), its id is returned; the
    sensor waits for it (``wait_for_completion`` is always False here).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wait_for_completion=False, **kwargs)

    def execute(self, context: Context, event: dict[str, Any] | None = None) -> str | None:
        if self.application_id and self.name:
            for run in list_job_runs(self.hook.conn, self.application_id, JOB_RUN_STATES_REUSABLE):
                if run.get("name") == self.name:
                    self.log.warning(
                        "Job run %s (%s) of this run exists already: not starting another",
                        run["id"],
                        run["state"],
                    )
                    self.job_id = run["id"]
                    return run["id"]
        return super().execute(context, event)


class EmrServerlessJobSensorWithLogs(EmrServerlessJobSensor):
    """``EmrServerlessJobSensor`` that explains a failed job run and does not retry it.

    ``wait`` (templated; ``{"poke_interval", "timeout", "log_wait"}`` seconds) sizes the
    wait at run time, ``deferrable`` is templated too. When the job run ends FAILED or
    CANCELLED, the log shows its stateDetails and the tail of the driver's stderr/stdout
    (from ``log_uri``), and the task fails without retrying. When it succeeds, the task
    returns ``{"jobRun", "application"}`` (``GetJobRun``/``GetApplication``, JSON data):
    what the download saves, read before the teardown can delete the application.
    """

    template_fields = (*EmrServerlessJobSensor.template_fields, "deferrable", "wait", "log_uri")

    def __init__(
        self,
        *,
        log_uri: str | None = None,
        wait: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.log_uri = log_uri
        self.wait = wait
        self.log_wait_seconds = 0.0
        self.finished_run: dict[str, Any] | None = None

    def _prepare(self) -> None:
        apply_wait(self)

    def execute(self, context: Context) -> dict[str, Any] | None:
        self._prepare()
        self.finished_run = None
        super().execute(context)  # defers (then execute_complete returns) or succeeds here
        return self.finished_run

    def _fail_with_details(self, reason: str) -> None:
        job_run = self.hook.conn.get_job_run(
            applicationId=self.application_id, jobRunId=self.job_run_id
        )["jobRun"]
        report = describe_job_run_failure(
            job_run,
            s3_hook=S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name),
            log_uri=self.log_uri or "",
            wait_seconds=self.log_wait_seconds,
            log=self.log.info,
        )
        self.log.error("%s", report)
        raise AirflowFailException(f"{reason}; see the job run's failure details above")

    def poke(self, context: Context) -> bool:
        job_run = self.hook.conn.get_job_run(
            applicationId=self.application_id, jobRunId=self.job_run_id
        )["jobRun"]
        state = job_run["state"]
        self.log.info("Job run %s is %s", self.job_run_id, state)
        if state in EmrServerlessHook.JOB_FAILURE_STATES:
            self._fail_with_details(f"EMR Serverless job run {self.job_run_id} ended {state}")
        if state in self.target_states:
            self.finished_run = self._capture(job_run)
            return True
        return False

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        self._prepare()
        if not event or event.get("status") != "success":
            self._fail_with_details(f"EMR Serverless job run {self.job_run_id} failed: {event}")
        super().execute_complete(context, event)
        job_run = self.hook.conn.get_job_run(
            applicationId=self.application_id, jobRunId=self.job_run_id
        )["jobRun"]
        return self._capture(job_run)

    def _capture(self, job_run: Mapping[str, Any]) -> dict[str, Any]:
        """The ended job run and its application, as JSON data (the task's XCom): read
        here, before the teardown (which starts when this wait ends) deletes them."""
        application = self.hook.conn.get_application(applicationId=self.application_id)
        captured = {"jobRun": job_run, "application": application["application"]}
        return json.loads(json.dumps(captured, default=str))


class EmrServerlessCancelRunJobsOperator(AwsBaseOperator[EmrServerlessHook]):
    """Cancel this run's job runs that are still queued or running; wait until they end.

    ``application_id`` / ``job_run_id`` (templated) may be empty: the job run is then looked
    for by ``job_run_name`` on the run's applications (``application_tags``). Nothing to
    cancel is not an error. Meant as an ALL_DONE teardown.
    """

    aws_hook_class = EmrServerlessHook
    template_fields = aws_template_fields(
        "application_id", "job_run_id", "job_run_name", "application_tags"
    )

    def __init__(
        self,
        *,
        application_id: str | None = None,
        job_run_id: str | None = None,
        job_run_name: str | None = None,
        application_tags: Mapping[str, str] | None = None,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.application_id = application_id
        self.job_run_id = job_run_id
        self.job_run_name = job_run_name
        self.application_tags = application_tags
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context) -> list[str]:
        _fallback_region(self)
        conn = self.hook.conn
        apps = [self.application_id] if self.application_id else []
        if not apps and self.application_tags:
            apps = [a["applicationId"] for a in find_applications(conn, tags=self.application_tags)]
        cancelled: list[tuple[str, str]] = []
        for app_id in apps:
            for run in list_job_runs(conn, app_id, ACTIVE_JOB_RUN_STATES):
                ours = run["id"] == self.job_run_id or (
                    self.job_run_name and run.get("name") == self.job_run_name
                )
                if ours:
                    cancel_job_run(conn, app_id, run, log=self.log.warning)
                    cancelled.append((app_id, run["id"]))
        for app_id, run_id in cancelled:
            wait_until_ended(
                conn,
                app_id,
                run_id,
                delay=self.waiter_delay,
                attempts=self.waiter_max_attempts,
                log=self.log.info,
            )
        if not cancelled:
            self.log.info("No job run of this run is still running: nothing to cancel")
        return [run_id for _, run_id in cancelled]


def cancel_job_run(
    conn: Any, application_id: str, run: Mapping[str, Any], *, log: Callable[..., None]
) -> None:
    """``CancelJobRun`` for a queued or running job run; one already CANCELLING is left be."""
    if run["state"] not in CANCELLABLE_JOB_RUN_STATES:
        log("Job run %s is %s already", run["id"], run["state"])
        return
    log("Job run %s is %s while the run ends: cancelling it", run["id"], run["state"])
    conn.cancel_job_run(applicationId=application_id, jobRunId=run["id"])


def wait_until_ended(
    conn: Any,
    application_id: str,
    run_id: str,
    *,
    delay: float,
    attempts: int,
    log: Callable[..., None],
) -> None:
    """Poll the job run until it is SUCCESS, FAILED or CANCELLED; fail after ``attempts``."""
    state = ""
    for _ in range(max(1, attempts)):
        job_run = conn.get_job_run(applicationId=application_id, jobRunId=run_id)
        state = job_run["jobRun"]["state"]
        if state in ENDED_JOB_RUN_STATES:
            log("Job run %s is %s", run_id, state)
            return
        time.sleep(delay)
    raise AirflowFailException(f"job run {run_id} is still {state} after cancelling it")


class EmrServerlessDeleteRunApplicationsOperator(EmrServerlessDeleteApplicationOperator):
    """Stop and delete the applications this run created; stop (never delete) a shared one.

    ``application_id`` (templated) may be empty: when the create task failed after AWS had
    accepted the request, the application still carries the run's tags
    (``application_tags``) and is found by them. A shared application (tag
    ``application_scope=shared``) is only stopped, and only when no job run is active on it.
    Connection and region fall back to the configuration when the plan never got made.
    """

    template_fields = aws_template_fields("application_id", "application_tags")

    def __init__(
        self,
        *,
        application_id: str | None = None,
        application_tags: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        # force_stop off: this operator cancels the job runs itself (QUEUED included).
        super().__init__(application_id=application_id or "", force_stop=False, **kwargs)
        self.application_tags = application_tags

    def execute(self, context: Context) -> None:
        _fallback_region(self)
        conn = self.hook.conn
        known = self.application_id
        targets: list[str] = []
        if known:
            app = conn.get_application(applicationId=known)["application"]
            if (app.get("tags") or {}).get(SCOPE_TAG) == "shared":
                self._stop_shared(app)
            elif app["state"] != "TERMINATED":
                targets.append(known)
        tags = self.application_tags
        if tags and tags.get(SCOPE_TAG) == "run":
            targets += [
                a["applicationId"]
                for a in find_applications(conn, tags=tags)
                if a["applicationId"] != known
            ]
        if not known and not targets:
            self.log.info("No application of this run to delete (tags %s)", tags)
        for app_id in targets:
            self.log.info("Stopping and deleting application %s of this run", app_id)
            self.application_id = app_id
            # Job runs that are not over are cancelled here, not by the provider's force_stop:
            # its list of states has no QUEUED (a queued run would stay, and AWS refuses to
            # stop an application with one).
            active = list_job_runs(conn, app_id, ACTIVE_JOB_RUN_STATES)
            for run in active:
                cancel_job_run(conn, app_id, run, log=self.log.warning)
            for run in active:
                wait_until_ended(
                    conn,
                    app_id,
                    run["id"],
                    delay=self.waiter_delay,
                    attempts=self.waiter_max_attempts,
                    log=self.log.info,
                )
            state = _wait_for_application(
                conn,
                app_id,
                wanted={"CREATED", "STARTED", "STOPPED"},
                delay=self.waiter_delay,
                attempts=self.waiter_max_attempts,
            )
            if state in ("CREATED", "STOPPED"):
                # AWS refuses to stop an application that is not started (the provider's
                # delete stops first): one that never ran a job is deleted as it is.
                self._delete_application()
            else:
                super().execute(context)

    def _stop_shared(self, app: Mapping[str, Any]) -> None:
        app_id = app["applicationId"]
        active = list_job_runs(self.hook.conn, app_id, ACTIVE_JOB_RUN_STATES)
        if active:
            self.log.info(
                "Shared application %s has %d active job run(s): left running", app_id, len(active)
            )
            return
        if app["state"] in ("STARTED", "STARTING"):
            self.log.info("Stopping shared application %s (it is kept for later runs)", app_id)
            self.hook.conn.stop_application(applicationId=app_id)
        else:
            self.log.info("Shared application %s is %s: kept for later runs", app_id, app["state"])
