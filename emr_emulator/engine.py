"""The EMR engine: a background thread that plays every emulated cluster's part.

Life cycle (each phase lasts at least the configured seconds):
``STARTING`` -> ``BOOTSTRAPPING`` -> ``WAITING`` (idle) / ``RUNNING`` (a step runs) ->
``TERMINATING`` -> ``TERMINATED``, or ``TERMINATED_WITH_ERRORS`` after a bootstrap failure
or a failed step whose ActionOnFailure terminates the cluster. Timestamps go into moto's
model (``Status.Timeline``), so ``describe_cluster`` shows what EMR would.

* Bootstrap: every action's script must exist at its S3 path and pass ``bash -n``, and an
  ``s3://`` argument of it must exist (the script would download it); otherwise the
  cluster fails as EMR does, with ``BOOTSTRAP_FAILURE``. The script is not run (it
  installs packages on an EMR node).
* Idle: a cluster WAITING longer than ``AutoTerminationPolicy.IdleTimeout`` (read from the
  RunJobFlow request; times ``idle_scale``) is terminated; with
  ``KeepJobFlowAliveWhenNoSteps`` false it ends once it has no step left.
* Steps run one at a time (StepConcurrencyLevel 1) in a worker thread
  (:mod:`emr_emulator.steps`), with the executors YARN would grant them on this cluster
  (:mod:`emr_emulator.yarn`: fewer task slots, a hang, or Spark's refusal); CancelSteps
  and termination stop the running job's process group. Step logs reach
  ``<LogUri>/<cluster>/steps/<step>/`` ``log_delay_s`` after the step ends, as EMR pushes
  them late.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.core.utils import utcnow

from emr_emulator import steps as step_runner
from emr_emulator import yarn
from emr_emulator.bootstrap import check_bootstrap
from emr_emulator.mirror import S3Mirror, parse_s3_uri
from emr_emulator.serverless import ServerlessEngine

if TYPE_CHECKING:
    from emr_emulator.server import EmulatorSettings

log = logging.getLogger("emr_emulator")

ACTIVE = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
ENDED = ("TERMINATED", "TERMINATED_WITH_ERRORS")


@dataclass
class StepRecord:
    id: str
    name: str
    state: str = "PENDING"
    started: datetime | None = None
    ended: datetime | None = None
    exit_code: int | None = None


@dataclass
class ClusterRun:
    """What the engine knows of one cluster besides moto's model."""

    cluster: Any  # moto.emr.models.Cluster
    request: dict[str, Any]
    since: float = field(default_factory=time.monotonic)  # when the current phase began
    idle_since: float | None = None
    stop_reason: tuple[str, str, str] | None = None  # (code, message, final state)
    cancel: set[str] = field(default_factory=set)
    worker: threading.Thread | None = None
    running_step: str | None = None
    timeline: list[tuple[str, str]] = field(default_factory=list)
    step_records: dict[str, StepRecord] = field(default_factory=dict)
    start_failure: str | None = None  # VALIDATION_ERROR message: the cluster ends at STARTING

    @property
    def id(self) -> str:
        return self.cluster.id

    @property
    def idle_timeout_s(self) -> float | None:
        policy = self.request.get("AutoTerminationPolicy") or {}
        return float(policy["IdleTimeout"]) if policy.get("IdleTimeout") else None

    def summary(self) -> dict[str, Any]:
        """JSON for ``GET /_emr_emulator/clusters`` and the make targets."""
        return {
            "id": self.id,
            "name": self.cluster.name,
            "state": self.cluster.state,
            "reason": getattr(self.cluster, "emu_reason", None),
            "timeline": [{"state": s, "at": at} for s, at in self.timeline],
            "steps": [
                {
                    "id": r.id,
                    "name": r.name,
                    "state": r.state,
                    "started": r.started.isoformat() + "Z" if r.started else None,
                    "ended": r.ended.isoformat() + "Z" if r.ended else None,
                    "exit_code": r.exit_code,
                }
                for r in self.step_records.values()
            ],
        }


class EmrEngine:
    """Moves emulated clusters and steps; ``lock`` also guards the API layer's changes."""

    def __init__(self, settings: EmulatorSettings, s3_client_factory: Any) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.runs: dict[str, ClusterRun] = {}
        self._s3_factory = s3_client_factory
        self.job_s3_factory: Any = None  # role -> an S3 client acting as it (IAM enforced)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="emr-engine", daemon=True)
        self._timers: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.serverless = ServerlessEngine(self)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def s3_client(self) -> Any:
        return self._s3_factory()

    def job_s3_client(self, role: str | None) -> Any:
        """The client of a job's own S3 reads and writes: as ``role`` (the instance profile,
        the job runtime role) where IAM is enforced, as EMRFS and EMR Serverless use it."""
        if self.job_s3_factory is not None and role:
            return self.job_s3_factory(role)
        return self._s3_factory()

    # ---------------------------------------------------------------- API layer hooks

    def register(
        self, cluster: Any, request: dict[str, Any], *, start_failure: str | None = None
    ) -> None:
        """A new cluster from RunJobFlow (moto already made it WAITING): start it over.

        ``start_failure``: EMR's message when it cannot provision the nodes; the cluster
        then ends ``TERMINATED_WITH_ERRORS`` (``VALIDATION_ERROR``) after ``STARTING``.
        """
        with self.lock:
            run = ClusterRun(cluster=cluster, request=request, start_failure=start_failure)
            cluster.ready_datetime = None
            cluster.end_datetime = None
            for group in cluster.instance_groups:
                group.state = "PROVISIONING"
                group.ready_date_time = None
                group.end_date_time = None
            for step in cluster.steps:
                self._reset_step(run, step)
            self.runs[cluster.id] = run
            self._set_state(run, "STARTING", "", "Provisioning Amazon EC2 capacity")

    def steps_added(self, cluster_id: str, step_ids: list[str], previous_state: str) -> None:
        """AddJobFlowSteps: moto made them RUNNING/PENDING and the cluster RUNNING; the
        engine decides when each runs."""
        with self.lock:
            run = self.runs.get(cluster_id)
            if run is None:
                return
            run.cluster.state = previous_state
            for step in run.cluster.steps:
                if step.id in step_ids:
                    self._reset_step(run, step)

    def request_termination(self, cluster_id: str, previous: tuple[str, Any]) -> None:
        """TerminateJobFlows: moto made it TERMINATED at once; EMR goes through TERMINATING."""
        with self.lock:
            run = self.runs.get(cluster_id)
            if run is None:
                return
            state, end = previous
            if state in ENDED or state == "TERMINATING":
                run.cluster.state, run.cluster.end_datetime = state, end
                return
            run.cluster.state = state
            run.cluster.end_datetime = None
            self._begin_termination(run, "USER_REQUEST", "Terminated by user request")

    def request_cancel(self, cluster_id: str, step_id: str) -> tuple[str, str]:
        """CancelSteps for one step: (Status, Reason) of the CancelStepsInfo."""
        with self.lock:
            run = self.runs.get(cluster_id)
            step = self._find_step(run, step_id) if run else None
            if run is None or step is None:
                return "FAILED", f"Step {step_id} does not exist on cluster {cluster_id}"
            if step.state == "PENDING":
                self._end_step(run, step, "CANCELLED", reason="Cancelled by user request")
                return "SUBMITTED", ""
            if step.state == "RUNNING":
                run.cancel.add(step_id)
                self._step_state(run, step, "CANCEL_PENDING")
                return "SUBMITTED", ""
            return "FAILED", f"Step {step_id} is {step.state} and can no longer be cancelled"

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [run.summary() for run in self.runs.values()]

    # ---------------------------------------------------------------- thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the engine; a running job is killed (as if its cluster were terminated)."""
        with self.lock:
            for run in self.runs.values():
                if run.running_step:
                    run.cancel.add(run.running_step)
        self._stop.set()
        self._thread.join(timeout=10)
        self.serverless.stop()
        for run in list(self.runs.values()):
            if run.worker:
                run.worker.join(timeout=15)
        for timer in self._timers:
            timer.join(timeout=max(5.0, self.settings.log_delay_s + 5))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep serving the API; the error is logged and kept
                log.exception("EMR engine tick failed")
                self.errors.append(exc)
            self._stop.wait(self.settings.tick_s)

    def tick(self) -> None:
        """One pass over every cluster (the thread calls it every ``tick_s``)."""
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            self._advance(run)
        self.serverless.tick()

    # ---------------------------------------------------------------- state machine

    def _advance(self, run: ClusterRun) -> None:
        s = self.settings
        with self.lock:
            state = run.cluster.state
            elapsed = time.monotonic() - run.since
            if state == "STARTING" and elapsed >= s.start_s and run.start_failure:
                self._begin_termination(
                    run, "VALIDATION_ERROR", run.start_failure, final="TERMINATED_WITH_ERRORS"
                )
                return
            if state == "STARTING" and elapsed >= s.start_s:
                for group in run.cluster.instance_groups:
                    group.state = "BOOTSTRAPPING"
                self._set_state(run, "BOOTSTRAPPING", "", "Running bootstrap actions")
                return
            if state == "BOOTSTRAPPING" and elapsed < s.bootstrap_s:
                return
            if state == "TERMINATING":
                self._advance_termination(run, elapsed)
                return
            if state not in ("BOOTSTRAPPING", "WAITING", "RUNNING"):
                return
        if state == "BOOTSTRAPPING":
            failure = self._check_bootstrap(run)  # S3 I/O, outside the lock
            with self.lock:
                if run.cluster.state != "BOOTSTRAPPING":
                    return
                if failure:
                    self._begin_termination(
                        run, "BOOTSTRAP_FAILURE", failure, final="TERMINATED_WITH_ERRORS"
                    )
                    return
                now = utcnow()
                run.cluster.ready_datetime = now
                for group in run.cluster.instance_groups:
                    group.state, group.ready_date_time = "RUNNING", now
                self._become_idle(run)
            return
        with self.lock:
            self._schedule(run)

    def _become_idle(self, run: ClusterRun) -> None:
        run.idle_since = time.monotonic()
        self._set_state(run, "WAITING", "", "Cluster ready to run steps.")

    def _schedule(self, run: ClusterRun) -> None:
        """WAITING/RUNNING: start the next step, or end an idle cluster."""
        if run.worker is not None:
            return  # a step runs; the worker moves the cluster on when it ends
        pending = [st for st in run.cluster.steps if st.state == "PENDING"]
        if pending:
            step = pending[0]
            run.idle_since = None
            self._step_state(run, step, "RUNNING")
            step.start_date_time = utcnow()
            run.step_records[step.id].started = step.start_date_time
            run.running_step = step.id
            if run.cluster.state != "RUNNING":
                self._set_state(run, "RUNNING", "", f"Running step {step.id}")
            run.worker = threading.Thread(
                target=self._run_step, args=(run, step), name=f"step-{step.id}", daemon=True
            )
            run.worker.start()
            return
        if run.cluster.state == "RUNNING":
            self._become_idle(run)
        if not run.cluster.keep_job_flow_alive_when_no_steps:
            self._begin_termination(run, "ALL_STEPS_COMPLETED", "Steps completed")
            return
        timeout = run.idle_timeout_s
        idle_for = time.monotonic() - (run.idle_since or time.monotonic())
        if timeout and idle_for >= timeout * self.settings.idle_scale:
            self._begin_termination(
                run,
                "ALL_STEPS_COMPLETED",
                f"Cluster was idle for longer than its auto-termination IdleTimeout "
                f"({int(timeout)} s)",
            )

    def _begin_termination(
        self, run: ClusterRun, code: str, message: str, *, final: str = "TERMINATED"
    ) -> None:
        if run.cluster.state in ENDED or run.cluster.state == "TERMINATING":
            return
        run.stop_reason = (code, message, final)
        if run.running_step:
            run.cancel.add(run.running_step)
        for group in run.cluster.instance_groups:
            group.state = "TERMINATING"
        self._set_state(run, "TERMINATING", code, message)

    def _advance_termination(self, run: ClusterRun, elapsed: float) -> None:
        if run.worker is not None or elapsed < self.settings.terminate_s:
            return  # the running job is being stopped; its worker records the step
        for step in run.cluster.steps:
            if step.state in ("PENDING", "CANCEL_PENDING"):
                self._end_step(run, step, "CANCELLED", reason="Cluster terminated")
        code, message, final = run.stop_reason or ("USER_REQUEST", "Terminated", "TERMINATED")
        now = utcnow()
        run.cluster.end_datetime = now
        for group in run.cluster.instance_groups:
            group.state, group.end_date_time = "ENDED", now
        self._set_state(run, final, code, message)

    def _check_bootstrap(self, run: ClusterRun) -> str | None:
        master = next((i.ec2_instance_id for i in run.cluster.ec2_instances), "i-0emulatedmaster0")
        return check_bootstrap(self._s3_factory(), run.request, master)

    # ---------------------------------------------------------------- steps

    def _run_step(self, run: ClusterRun, step: Any) -> None:
        workdir = self.settings.data_dir / "steps" / run.id / step.id

        def prepare(mirror: S3Mirror) -> step_runner.PreparedStep:
            try:
                placement = yarn.place_step(run.request, step.hadoop_jar_step)
            except yarn.YarnConfigError as exc:
                raise step_runner.StepRejected(str(exc)) from None
            local_cores = self.settings.local_cores
            if placement is not None:
                local_cores = placement.local_cores(local_cores)
            prepared = step_runner.prepare_step(
                step.hadoop_jar_step,
                configurations=run.request.get("Configurations") or [],
                mirror=mirror,
                conf_dir=workdir / "spark-conf",
                local_cores=local_cores,
                python=self.settings.python,
            )
            if placement is not None:
                yarn.apply_placement(prepared, placement, python=self.settings.python)
            return prepared

        def should_stop() -> str | None:
            with self.lock:
                if step.id in run.cancel:
                    return "cancelled"
            return "stopping" if self._stop.is_set() else None

        result = step_runner.run_job(
            prepare,
            mirror=S3Mirror(
                self.settings.data_dir / "s3", self.job_s3_client(run.request.get("JobFlowRole"))
            ),
            workdir=workdir,
            controller=[f"emulator: step {step.id} ({step.name}) on {run.id}"],
            should_stop=should_stop,
        )
        exit_code, stopped, output = result.exit_code, result.stopped, result.output
        if self.settings.log_delay_s <= 0:  # no delay: the logs are there with the end state
            self._push_logs(run, step.id, workdir)
        with self.lock:
            record = run.step_records[step.id]
            record.exit_code = exit_code
            if stopped:
                self._end_step(run, step, "CANCELLED", reason="Cancelled: the job was stopped")
            elif exit_code == 0:
                self._end_step(run, step, "COMPLETED")
            else:
                log_file = self._log_uri(run, step.id, "stderr.gz")
                step.emu_failure = {
                    "Reason": f"The step's command exited with code {exit_code}",
                    "Message": step_runner.failure_message(output, exit_code),
                    "LogFile": log_file or "",
                }
                self._end_step(run, step, "FAILED")
                self._on_failure(run, step)
            run.worker = None
            run.running_step = None
            run.cancel.discard(step.id)
            if run.cluster.state == "RUNNING":
                self._schedule(run)
        if self.settings.log_delay_s > 0:
            self._push_logs_later(run, step.id, workdir)

    def _on_failure(self, run: ClusterRun, step: Any) -> None:
        action = step.action_on_failure
        if action in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"):
            self._begin_termination(
                run, "STEP_FAILURE", f"Step {step.id} failed", final="TERMINATED_WITH_ERRORS"
            )
        elif action == "CANCEL_AND_WAIT":
            for other in run.cluster.steps:
                if other.state == "PENDING":
                    self._end_step(run, other, "CANCELLED", reason=f"Step {step.id} failed")

    def _log_uri(self, run: ClusterRun, step_id: str, name: str) -> str | None:
        log_uri = run.request.get("LogUri") or run.cluster.log_uri
        if not log_uri or parse_s3_uri(log_uri) is None:
            return None
        return f"{log_uri.rstrip('/')}/{run.id}/steps/{step_id}/{name}"

    def _push_logs(self, run: ClusterRun, step_id: str, workdir: Path) -> None:
        """controller/stdout/stderr, gzipped, to ``<LogUri>/<cluster>/steps/<step>/``."""
        uploads = []
        for name in ("controller", "stdout", "stderr"):
            uri = self._log_uri(run, step_id, f"{name}.gz")
            if uri is None:
                return
            uploads.append((uri, workdir / name))
        self.push_logs(uploads)

    def push_logs(self, uploads: list[tuple[str, Path]]) -> None:
        """Upload logs now; a failure is logged and kept in ``errors`` (the job's state stays)."""
        try:
            step_runner.push_logs(self._s3_factory(), uploads)
        except Exception as exc:
            log.exception("could not push the logs %s", [uri for uri, _ in uploads])
            self.errors.append(exc)

    def later(self, name: str, action: Any) -> None:
        """Run ``action`` ``log_delay_s`` from now (EMR uploads logs some time after a job)."""

        def run() -> None:
            time.sleep(self.settings.log_delay_s)
            action()

        timer = threading.Thread(target=run, name=name, daemon=True)
        self._timers.append(timer)
        timer.start()

    def _push_logs_later(self, run: ClusterRun, step_id: str, workdir: Path) -> None:
        self.later(f"logs-{step_id}", lambda: self._push_logs(run, step_id, workdir))

    # ---------------------------------------------------------------- helpers

    def _set_state(self, run: ClusterRun, state: str, code: str, message: str) -> None:
        run.cluster.state = state
        run.cluster.last_state_change_reason = message
        run.cluster.emu_reason = {"Code": code, "Message": message} if code else None
        run.since = time.monotonic()
        run.timeline.append((state, utcnow().isoformat() + "Z"))
        log.info("cluster %s: %s %s", run.id, state, f"({code}: {message})" if code else "")

    def _reset_step(self, run: ClusterRun, step: Any) -> None:
        step.state = "PENDING"
        step.start_date_time = None
        run.step_records[step.id] = StepRecord(step.id, step.name)

    def _step_state(self, run: ClusterRun, step: Any, state: str) -> None:
        step.state = state
        if step.id in run.step_records:
            run.step_records[step.id].state = state
        log.info("step %s of %s: %s", step.id, run.id, state)

    def _end_step(self, run: ClusterRun, step: Any, state: str, *, reason: str = "") -> None:
        self._step_state(run, step, state)
        step.end_date_time = utcnow()
        if reason:
            step.last_state_change_reason = reason
        if step.id in run.step_records:
            run.step_records[step.id].ended = step.end_date_time

    @staticmethod
    def _find_step(run: ClusterRun, step_id: str) -> Any | None:
        return next((st for st in run.cluster.steps if st.id == step_id), None)

    def iter_runs(self) -> Iterator[ClusterRun]:
        with self.lock:
            yield from list(self.runs.values())
