"""EMR Serverless played for real: applications and job runs move as on AWS, jobs run locally.

moto 5.2.5 makes an application STARTED at once and every job run SUCCESS at once, billing
nothing. :class:`ServerlessEngine` (driven by the EMR engine's thread, under its lock) corrects
that, on moto's own model objects (so ``get_application`` / ``get_job_run`` / ``list_*`` answer
from them):

* Applications: ``CREATING`` -> ``CREATED`` (``app_create_s``); ``StartApplication`` (or a job
  run when ``autoStartConfiguration`` is enabled, the default) -> ``STARTING`` -> ``STARTED``
  (``start_s``); ``StopApplication`` or the ``autoStopConfiguration`` idle timeout (minutes x
  ``idle_scale``) -> ``STOPPING`` -> ``STOPPED`` (``terminate_s``). Delete only from
  ``CREATED``/``STOPPED`` (moto checks).
* Job runs: ``SUBMITTED`` -> [``QUEUED``] -> ``PENDING`` -> ``SCHEDULED`` (``job_queue_s``
  each, once the application is ``STARTED``) -> ``RUNNING`` -> ``SUCCESS`` | ``FAILED`` (with
  AWS's kind of ``stateDetails``) | ``CANCELLED`` (``CancelJobRun`` goes through
  ``CANCELLING`` and kills the job's process group; ``executionTimeoutMinutes`` x
  ``timeout_scale`` cancels it too, 0 = never). ``QUEUED``: job concurrency and queuing
  (:func:`scheduler_configuration`) while the application's ``maxConcurrentRuns`` runs are
  past the queue; a run queued longer than ``queueTimeoutMinutes`` x ``timeout_scale`` is
  cancelled. ``StartJobRun`` refuses a driver or executor no worker can hold
  (:func:`emr_emulator.serverless_jobs.check_worker_sizes`).
  The job is the real ``spark-submit`` on local Spark (:mod:`emr_emulator.serverless_jobs`,
  sharing the cluster steps' runner and S3 mirror). Its logs reach
  ``<logUri>/applications/<app>/jobs/<run>/SPARK_DRIVER/{stdout,stderr}.gz`` ``log_delay_s``
  after it ends. ``totalExecutionDurationSeconds``, ``totalResourceUtilization`` and
  ``billedResourceUtilization`` are computed from the run's duration and its requested workers.

Job runs run one at a time (the others wait ``SCHEDULED``, as for capacity: AWS holds a run
whose workers do not fit the application's ``maximumCapacity`` there too, concurrency slots
count runs, not workers): they share the S3 mirror. Not emulated: pre-initialised capacity,
``maximumCapacity`` limits beyond that, executors scaling,
interactive sessions, retries (``retryPolicy``), job-run attempts, the Spark UI / dashboard,
custom images, networkConfiguration (there is no VPC), and IAM (the execution role is not
checked).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moto.core.utils import utcnow

from emr_emulator import steps as step_runner
from emr_emulator.mirror import S3Mirror, parse_s3_uri
from emr_emulator.serverless_jobs import (
    Worker,
    check_worker_sizes,
    job_run_conf,
    prepare_job_run,
    requested_workers,
    resource_utilization,
)
from emr_emulator.serverless_scheduler import SCHEDULER_DEFAULTS, scheduler_configuration

if TYPE_CHECKING:
    from emr_emulator.engine import EmrEngine

log = logging.getLogger("emr_emulator")

JOB_ACTIVE = ("SUBMITTED", "QUEUED", "PENDING", "SCHEDULED", "RUNNING", "CANCELLING")
JOB_ENDED = ("SUCCESS", "FAILED", "CANCELLED")
_QUEUE = {"SUBMITTED": "PENDING", "PENDING": "SCHEDULED"}
_PAST_THE_QUEUE = ("PENDING", "SCHEDULED", "RUNNING", "CANCELLING")
"""States of a job run that holds one of the application's concurrency slots."""


@dataclass
class AppRecord:
    app: Any  # moto.emrserverless.models.Application
    request: dict[str, Any]
    scheduler: dict[str, int] | None = None  # job concurrency and queuing, None: off
    since: float = field(default_factory=time.monotonic)
    idle_since: float | None = None
    timeline: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class JobRecord:
    run: Any  # moto.emrserverless.models.JobRun
    since: float = field(default_factory=time.monotonic)
    started: float | None = None  # monotonic, when RUNNING began
    stop_reason: str | None = None  # why its process is being stopped
    worker: threading.Thread | None = None
    workers: list[Worker] = field(default_factory=list)
    timeline: list[tuple[str, str]] = field(default_factory=list)


class ServerlessRefused(ValueError):
    """A request AWS would refuse (the API layer answers ValidationException)."""


class ServerlessEngine:
    """Applications and job runs of moto's emr-serverless backend, moved by ``host``'s thread."""

    def __init__(self, host: EmrEngine) -> None:
        self.host = host
        self.settings = host.settings
        self.lock = host.lock
        self.apps: dict[str, AppRecord] = {}
        self.jobs: dict[str, JobRecord] = {}

    # ---------------------------------------------------------------- API layer hooks

    def check_application(self, request: dict[str, Any], app_id: str | None = None) -> None:
        """Create/UpdateApplication, before moto records it: a schedulerConfiguration AWS
        refuses is refused."""
        record = self.apps.get(app_id) if app_id else None
        label = request.get("releaseLabel") or (
            record.request.get("releaseLabel") if record else ""
        )
        if "schedulerConfiguration" in request or record is None:
            try:
                scheduler_configuration(str(label or ""), request.get("schedulerConfiguration"))
            except ValueError as exc:
                raise ServerlessRefused(str(exc)) from None

    def application_created(self, app: Any, request: dict[str, Any]) -> None:
        """CreateApplication: moto made it STARTED; it starts CREATING."""
        app.architecture = str(request.get("architecture") or "X86_64")
        scheduler = scheduler_configuration(
            str(request.get("releaseLabel") or ""), request.get("schedulerConfiguration")
        )
        record = AppRecord(app, request, scheduler)
        self.apps[app.id] = record
        app.created_at = utcnow()
        self._app_state(record, "CREATING", "")

    def application_updated(self, app_id: str, request: dict[str, Any]) -> None:
        record = self.apps.get(app_id)
        if record is not None and request.get("architecture"):
            record.app.architecture = str(request["architecture"])
        if record is not None and "schedulerConfiguration" in request:
            label = request.get("releaseLabel") or record.request.get("releaseLabel") or ""
            record.scheduler = scheduler_configuration(
                str(label), request["schedulerConfiguration"]
            )

    def start_application(self, app_id: str, previous: str, *, dry_run: bool = False) -> None:
        """StartApplication (moto made it STARTED): refused while it is being created or
        stopped; a no-op when started or starting (EMR Serverless User Guide, "Application
        states": CREATED/STOPPED -> STARTING -> STARTED)."""
        record = self.apps.get(app_id)
        if record is None or previous in ("STARTED", "STARTING"):
            if record is not None:
                record.app.state = previous
            return
        if previous not in ("CREATED", "STOPPED"):
            raise ServerlessRefused(
                f"Application {app_id} is {previous}; it can be started from CREATED or STOPPED"
            )
        if dry_run:
            return
        self._app_state(record, "STARTING", "")

    def stop_application(self, app_id: str, previous: str, *, dry_run: bool = False) -> None:
        """StopApplication: only from STARTING/STARTED (AWS refuses CREATED and STOPPED too),
        and refused while a job run is active (AWS: completed or cancelled first). Sources:
        EMR Serverless User Guide, "Application states"; the refusal's wording as quoted in
        gchq/sleeper#1212."""
        record = self.apps.get(app_id)
        if record is None:
            return
        if previous not in ("STARTING", "STARTED"):  # AWS's own words
            raise ServerlessRefused(
                f"Application cannot be STOPPED. Applications must be in one of the following "
                f"statuses: [STARTING, STARTED]. Current status: {previous}"
            )
        active = [j.run.id for j in self._jobs_of(app_id) if j.run.state in JOB_ACTIVE]
        if active:
            raise ServerlessRefused(
                f"Application {app_id} has job runs that are not finished ({', '.join(active)}): "
                "cancel them or wait for them before stopping it"
            )
        if dry_run:
            return
        self._app_state(record, "STOPPING", "")

    def application_deleted(self, app_id: str) -> None:
        record = self.apps.get(app_id)
        if record is not None:
            self._app_state(record, "TERMINATED", "")

    def check_job_submission(self, app_id: str, request: dict[str, Any] | None = None) -> None:
        """Before moto records a job run: an application that cannot start refuses it
        (EMR Serverless User Guide, "Application states": autoStartConfiguration), and so does
        a driver or executor no EMR Serverless worker can hold (serverless_jobs.WORKER_MEMORY_GB
        cites its table)."""
        record = self.apps.get(app_id)
        if record is None:
            return
        if request is not None:
            runtime = record.request.get("runtimeConfiguration")
            try:
                conf = job_run_conf(
                    request.get("jobDriver") or {}, request.get("configurationOverrides"), runtime
                )
                check_worker_sizes(conf)
            except ValueError as exc:
                raise ServerlessRefused(str(exc)) from None
        app = record.app
        auto_start = (app.auto_start_configuration or {}).get("enabled", True)
        if app.state in ("CREATING", "CREATED", "STOPPING", "STOPPED") and not auto_start:
            raise ServerlessRefused(
                f"Application {app_id} is {app.state} and its autoStartConfiguration is "
                "disabled: start it before submitting a job run"
            )

    def job_run_started(self, run: Any) -> None:
        """StartJobRun: moto made it SUCCESS; it starts SUBMITTED."""
        run.created_at = utcnow()
        if run.execution_timeout_minutes is None:  # AWS's default: 12 hours (0 = never)
            run.execution_timeout_minutes = 720
        record = JobRecord(run)
        app = self.apps.get(run.application_id)
        runtime = app.request.get("runtimeConfiguration") if app else None
        try:
            conf = job_run_conf(run.job_driver or {}, run.configuration_overrides, runtime)
            record.workers = requested_workers(conf)
        except (ValueError, KeyError) as exc:
            log.warning("job run %s: sizes not understood (%s); billed as none", run.id, exc)
        self.jobs[run.id] = record
        self._job_state(record, "SUBMITTED", None)

    def cancel_job_run(self, run_id: str, previous: str, *, dry_run: bool = False) -> None:
        """CancelJobRun (moto made it CANCELLED): a queued run ends at once, a running one
        goes CANCELLING until its process is gone; an ended run refuses (EMR Serverless
        User Guide, "Job run states": SUCCESS, FAILED and CANCELLED are final)."""
        record = self.jobs.get(run_id)
        if record is None:
            return
        if previous in JOB_ENDED:
            raise ServerlessRefused(f"Job run {run_id} is {previous} and cannot be cancelled")
        if dry_run:
            return
        record.run.state = previous
        if previous == "CANCELLING":
            return
        record.stop_reason = record.stop_reason or "Job run cancelled by user request"
        self._job_state(record, "CANCELLING", None)
        if record.worker is None:
            self._end_job(record, "CANCELLED", record.stop_reason)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "applications": [
                    {
                        "id": r.app.id,
                        "name": r.app.name,
                        "state": r.app.state,
                        "timeline": [{"state": s, "at": at} for s, at in r.timeline],
                    }
                    for r in self.apps.values()
                ],
                "job_runs": [
                    {
                        "id": j.run.id,
                        "application_id": j.run.application_id,
                        "state": j.run.state,
                        "state_details": j.run.state_details,
                        "timeline": [{"state": s, "at": at} for s, at in j.timeline],
                    }
                    for j in self.jobs.values()
                ],
            }

    def stop(self) -> None:
        """The emulator stops: running jobs are killed (their runs end CANCELLED)."""
        with self.lock:
            for record in self.jobs.values():
                if record.worker is not None:
                    record.stop_reason = "the emulator stopped"
            workers = [r.worker for r in self.jobs.values() if r.worker is not None]
        for worker in workers:
            worker.join(timeout=15)

    # ---------------------------------------------------------------- state machine

    def tick(self) -> None:
        s = self.settings
        with self.lock:
            now = time.monotonic()
            for record in list(self.apps.values()):
                self._advance_app(record, now - record.since)
            for job in list(self.jobs.values()):
                state, elapsed = job.run.state, now - job.since
                app = self.apps.get(job.run.application_id)
                if state in _QUEUE and app is not None:
                    if state == "SUBMITTED" and app.app.state in ("CREATED", "STOPPED"):
                        self._app_state(app, "STARTING", "")  # auto-start
                    if app.app.state == "STARTED" and elapsed >= s.job_queue_s:
                        queued = state == "SUBMITTED" and self._concurrency_taken(app)
                        self._job_state(job, "QUEUED" if queued else _QUEUE[state], None)
                    elif app.app.state == "TERMINATED":
                        self._end_job(job, "FAILED", "Application was deleted")
                elif state == "QUEUED" and app is not None:
                    self._advance_queued(job, app, elapsed)
                elif state == "SCHEDULED" and elapsed >= s.job_queue_s and not self._busy():
                    self._launch(job)
                elif state == "RUNNING" and job.started is not None:
                    minutes = job.run.execution_timeout_minutes
                    limit = minutes * 60 * s.timeout_scale if minutes else float("inf")
                    if now - job.started >= limit and job.stop_reason is None:
                        job.stop_reason = (
                            "Job run exceeded its executionTimeoutMinutes "
                            f"({job.run.execution_timeout_minutes}) and was cancelled"
                        )

    def _advance_app(self, record: AppRecord, elapsed: float) -> None:
        s, app = self.settings, record.app
        if app.state == "CREATING" and elapsed >= s.app_create_s:
            self._app_state(record, "CREATED", "")
        elif app.state == "STARTING" and elapsed >= s.start_s:
            self._app_state(record, "STARTED", "")
            record.idle_since = time.monotonic()
        elif app.state == "STOPPING" and elapsed >= s.terminate_s:
            self._app_state(record, "STOPPED", app.state_details)  # why it stopped
        elif app.state == "STARTED":
            if any(j.run.state in JOB_ACTIVE for j in self._jobs_of(app.id)):
                record.idle_since = None
                return
            record.idle_since = record.idle_since or time.monotonic()
            stop = app.auto_stop_configuration or {}
            minutes = float(stop.get("idleTimeoutMinutes") or 15)
            idle_for = time.monotonic() - record.idle_since
            if stop.get("enabled", True) and idle_for >= minutes * 60 * s.idle_scale:
                self._app_state(
                    record, "STOPPING", f"Application idle for {minutes:g} minutes (auto-stop)"
                )

    def _concurrency_taken(self, app: AppRecord) -> bool:
        """All of the application's concurrency slots are held (never, without queuing)."""
        if app.scheduler is None:
            return False
        held = [j for j in self._jobs_of(app.app.id) if j.run.state in _PAST_THE_QUEUE]
        return len(held) >= app.scheduler["maxConcurrentRuns"]

    def _advance_queued(self, job: JobRecord, app: AppRecord, elapsed: float) -> None:
        """A QUEUED run: on to PENDING when a slot is free (oldest first: ``self.jobs`` is
        in submission order), cancelled past ``queueTimeoutMinutes``."""
        if app.app.state == "TERMINATED":
            self._end_job(job, "FAILED", "Application was deleted")
        elif not self._concurrency_taken(app):
            self._job_state(job, "PENDING", None)
        else:
            minutes = (app.scheduler or SCHEDULER_DEFAULTS)["queueTimeoutMinutes"]
            if elapsed >= minutes * 60 * self.settings.timeout_scale:
                details = (
                    f"Job run timed out in the queue: it waited longer than the application's "
                    f"queueTimeoutMinutes ({minutes}) for a concurrency slot"
                )
                self._job_state(job, "CANCELLING", details)
                self._end_job(job, "CANCELLED", details)

    def _launch(self, job: JobRecord) -> None:
        job.started = time.monotonic()
        job.run.started_at = utcnow()
        self._job_state(job, "RUNNING", None)
        job.worker = threading.Thread(
            target=self._run_job, args=(job,), name=f"jobrun-{job.run.id}", daemon=True
        )
        job.worker.start()

    # ---------------------------------------------------------------- the job

    def _run_job(self, job: JobRecord) -> None:
        run = job.run
        workdir = self.settings.data_dir / "jobruns" / run.application_id / run.id
        app = self.apps.get(run.application_id)
        runtime = app.request.get("runtimeConfiguration") if app else None

        def prepare(mirror: S3Mirror) -> step_runner.PreparedStep:
            return prepare_job_run(
                run.job_driver or {},
                run.configuration_overrides,
                app_runtime=runtime,
                mirror=mirror,
                conf_dir=workdir / "spark-conf",
                local_cores=self.settings.local_cores,
                python=self.settings.python,
                envs_dir=self.settings.data_dir / "envs" if self.settings.use_archives else None,
            )

        def should_stop() -> str | None:
            with self.lock:
                if job.stop_reason:
                    return job.stop_reason
            return "the emulator stopped" if self.host.stopping else None

        result = step_runner.run_job(
            prepare,
            mirror=S3Mirror(
                self.settings.data_dir / "s3", self.host.job_s3_client(run.execution_role_arn)
            ),
            workdir=workdir,
            controller=[f"emulator: job run {run.id} of application {run.application_id}"],
            should_stop=should_stop,
        )
        uploads = self._log_uploads(job, workdir)
        if self.settings.log_delay_s <= 0:  # no delay: the logs are there with the end state
            self.host.push_logs(uploads)
        with self.lock:
            if result.stopped:
                self._end_job(job, "CANCELLED", job.stop_reason or result.stopped)
            elif result.exit_code == 0:
                self._end_job(job, "SUCCESS", None)
            else:
                self._end_job(
                    job,
                    "FAILED",
                    "Job failed, please check complete logs in configured logging destination. "
                    f"ExitCode: {result.exit_code}. Last few exceptions: "
                    + step_runner.failure_message(result.output, result.exit_code),
                )
            job.worker = None
        if self.settings.log_delay_s > 0:
            self.host.later(f"logs-{run.id}", lambda: self.host.push_logs(uploads))

    def _log_uploads(self, job: JobRecord, workdir: Any) -> list[tuple[str, Any]]:
        """The driver's logs in AWS's layout; the emulator's own lines head stderr."""
        monitoring = (job.run.configuration_overrides or {}).get("monitoringConfiguration") or {}
        log_uri = (monitoring.get("s3MonitoringConfiguration") or {}).get("logUri")
        if not log_uri or parse_s3_uri(log_uri) is None:
            return []
        combined = workdir / "stderr.pushed"
        parts = [workdir / "controller", workdir / "stderr"]
        combined.write_bytes(b"".join(p.read_bytes() for p in parts if p.is_file()))
        base = f"{log_uri.rstrip('/')}/applications/{job.run.application_id}/jobs/{job.run.id}"
        return [
            (f"{base}/SPARK_DRIVER/stdout.gz", workdir / "stdout"),
            (f"{base}/SPARK_DRIVER/stderr.gz", combined),
        ]

    # ---------------------------------------------------------------- helpers

    def _busy(self) -> bool:
        """One job run at a time: runs share the S3 mirror, whose before/after snapshots
        would take another run's files for their own. The others wait SCHEDULED (on AWS:
        waiting for capacity)."""
        return any(j.worker is not None for j in self.jobs.values())

    def _jobs_of(self, app_id: str) -> list[JobRecord]:
        return [j for j in self.jobs.values() if j.run.application_id == app_id]

    def _end_job(self, job: JobRecord, state: str, details: str | None) -> None:
        run = job.run
        run.ended_at = utcnow()
        duration = time.monotonic() - job.started if job.started is not None else 0.0
        workers = job.workers if job.started is not None else []
        run.total_execution_duration_seconds = math.ceil(duration)
        run.total_resource_utilization = resource_utilization(workers, duration, billed=False)
        run.billed_resource_utilization = resource_utilization(workers, duration, billed=True)
        self._job_state(job, state, details)

    def _job_state(self, job: JobRecord, state: str, details: str | None) -> None:
        job.run.state = state
        job.run.state_details = details or ""
        job.run.updated_at = utcnow()
        job.since = time.monotonic()
        job.timeline.append((state, utcnow().isoformat() + "Z"))
        log.info("job run %s: %s %s", job.run.id, state, f"({details})" if details else "")

    def _app_state(self, record: AppRecord, state: str, details: str) -> None:
        record.app.state = state
        record.app.state_details = details
        record.app.updated_at = utcnow()
        record.since = time.monotonic()
        record.timeline.append((state, utcnow().isoformat() + "Z"))
        log.info("application %s: %s %s", record.app.id, state, details)
