"""A quiet console for ``dag.test()`` runs (``make run``, ``make run-emr``).

Everything the run writes — Airflow's structured logs, task logs, spark-submit and its JVM —
goes to a log file (the process's stdout/stderr file descriptors are pointed at it, so child
processes are captured too). The terminal gets one line per task start and end (with the
duration and the end state), a progress line now and then while a task runs, and what the
caller prints with :meth:`RunConsole.say`. On failure :meth:`RunConsole.failure_report`
gives the failing task, the last lines of its log and the job's own ``error:`` line.

Task boundaries come from the ``[DAG TEST] starting task_id=...`` / ``end task`` lines
``dag.test()`` logs (on ``airflow.sdk.definitions.dag``), read back from the log file.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DAG_TEST_LOGGER = "airflow.sdk.definitions.dag"
_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
_OWN_PREFIX = "[console] "
_STAGE = re.compile(r"\[Stage (\d+):[^\]]*?\((\d+) \+ (\d+)\) / (\d+)\]")


def spark_stage_progress(text: str) -> str | None:
    """The last Spark console progress bar in ``text`` as ``stage N: done/total tasks``."""
    matches = _STAGE.findall(text)
    if not matches:
        return None
    stage, done, running, total = matches[-1]
    return f"Spark stage {stage}: {done}/{total} tasks done, {running} running"


@dataclass
class TaskTiming:
    task_id: str
    started: float
    offset: int  # where its log section begins in the log file
    ended: float | None = None
    state: str | None = None
    end_offset: int | None = None

    @property
    def duration(self) -> float:
        return (self.ended or time.monotonic()) - self.started


class RunConsole:
    """Context manager: output to ``log_path``, task lines to the terminal.

    ``state_of(task_id)`` gives a finished task's state (from the metadata DB). Every
    ``progress_every_s`` a running task gets a line with its time so far and
    ``progress(task_id)`` (or, without one, the last Spark stage progress bar in the log).
    """

    def __init__(
        self,
        log_path: Path,
        *,
        state_of: Callable[[str], str | None] | None = None,
        progress: Callable[[str], str | None] | None = None,
        progress_every_s: float = 15.0,
        terminal: IO[str] | None = None,
    ) -> None:
        self.log_path = Path(log_path)
        self.state_of = state_of
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.tasks: dict[str, TaskTiming] = {}
        self._terminal = terminal
        self._saved: tuple[int, int] | None = None
        self._read_pos = 0
        self._partial = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()  # the watcher thread and the caller both scan

    # ---------------------------------------------------------------- set-up

    def __enter__(self) -> RunConsole:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        if self._terminal is None:
            self._terminal = _terminal_stream(self._saved[0])
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        logger = logging.getLogger(DAG_TEST_LOGGER)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)  # the task boundaries are INFO records
        self._read_pos = self._offset()
        self.say(f"full log: {self.log_path}")
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._scan()  # boundaries written since the last pass
        sys.stdout.flush()
        sys.stderr.flush()
        if self._saved is not None:
            os.dup2(self._saved[0], 1)
            os.dup2(self._saved[1], 2)
            for fd in self._saved:
                os.close(fd)
            self._saved = None

    # ---------------------------------------------------------------- output

    def catch_up(self) -> None:
        """Report the task boundaries logged so far (before a closing summary)."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._scan()

    def say(self, line: str = "") -> None:
        """A line on the terminal (and in the log file, to keep it complete)."""
        with self._lock:
            assert self._terminal is not None
            self._terminal.write(line + "\n")
            self._terminal.flush()
            os.write(1, f"{_OWN_PREFIX}{line}\n".encode())

    def _offset(self) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _task_started(self, task_id: str, offset: int) -> None:
        self.tasks[task_id] = TaskTiming(task_id, time.monotonic(), offset)
        self.say(f"{time.strftime('%H:%M:%S')}  start    {task_id}")

    def _task_ended(self, task_id: str, offset: int) -> None:
        timing = self.tasks.get(task_id)
        if timing is None:
            return
        timing.ended = time.monotonic()
        timing.end_offset = offset
        timing.state = self.state_of(task_id) if self.state_of else None
        state = timing.state or "done"
        self.say(f"{time.strftime('%H:%M:%S')}  {state:<8} {task_id} ({timing.duration:.1f} s)")

    def _scan(self) -> None:
        """Read what the run appended to the log file; act on task boundary lines.

        The log file, not a logging handler, is the source: Airflow reconfigures logging
        while a run goes on, and a handler added before may stop receiving records."""
        with self._scan_lock:
            self._scan_locked()

    def _scan_locked(self) -> None:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._read_pos)
                data = handle.read()
        except OSError:
            return
        position = self._read_pos - len(self._partial)
        self._read_pos += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line.startswith(_OWN_PREFIX):
                if match := _START.search(line):
                    self._task_started(match.group(1), position)
                elif match := _END.search(line):
                    self._task_ended(match.group(1), position + len(raw) + 1)
            position += len(raw) + 1

    def _watch(self) -> None:
        next_progress = time.monotonic() + self.progress_every_s
        while not self._stop.wait(0.5):
            self._scan()
            if time.monotonic() >= next_progress:
                next_progress = time.monotonic() + self.progress_every_s
                self._progress_line()

    def _progress_line(self) -> None:
        running = [t for t in self.tasks.values() if t.ended is None]
        if running:
            task = running[-1]
            try:
                extra = self.progress(task.task_id) if self.progress else None
                extra = extra or spark_stage_progress(self._log_tail())
            except Exception as exc:  # progress is a courtesy; never fail the run for it
                extra = f"(no progress: {type(exc).__name__})"
            suffix = f"; {extra}" if extra else ""
            self.say(f"          ...      {task.task_id}: {task.duration:.0f} s{suffix}")

    def _log_tail(self, size: int = 64 * 1024) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(max(0, self._offset() - size))
            return handle.read().decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- after the run

    def task_log(self, task_id: str) -> str:
        """The part of the log file written while ``task_id`` ran."""
        timing = self.tasks.get(task_id)
        if timing is None:
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(timing.offset)
            size = (timing.end_offset or self._offset()) - timing.offset
            data = handle.read(max(size, 0))
        return data.decode("utf-8", errors="replace")

    def failure_report(self, states: dict[str, str], *, lines: int = 25) -> str:
        """The failed tasks, the job's own reason (its ``error:`` line) when it gave one, then
        the last lines of the first failed task's log."""
        failed = [t for t, s in states.items() if s == "failed"]
        ordered = sorted(
            failed, key=lambda t: self.tasks[t].started if t in self.tasks else float("inf")
        )
        first = next((t for t in ordered if t != "fail_run_if_any_task_failed"), None)
        if first is None:
            return "no task failed"
        text = self.task_log(first)
        tail = [line for line in text.splitlines() if not line.startswith(_OWN_PREFIX)][-lines:]
        out = [f"failed: {', '.join(ordered)}"]
        # The job's reason first: a traceback's last lines rarely say what to fix.
        reasons = re.findall(r"(?:^|\W)(error: .+)$", text, re.M)
        if reasons:
            out.append(f"the job's own reason: {reasons[-1].strip()}")
        out.append(f"last lines of {first}'s log:")
        out += [f"  | {line}" for line in tail]
        out.append(f"(everything is in {self.log_path})")
        return "\n".join(out)


def _terminal_stream(saved_stdout_fd: int) -> IO[str]:
    """Where console lines go: ``sys.stdout`` unless it writes to fd 1 (which now points at
    the log file), in which case a copy of the original fd 1."""
    try:
        if sys.stdout.fileno() != 1:
            return sys.stdout
    except (AttributeError, OSError, ValueError):  # a capture object (pytest) or no fd
        return sys.stdout
    return os.fdopen(os.dup(saved_stdout_fd), "w", buffering=1)


def task_state_lookup(dag_id: str) -> Callable[[str], str | None]:
    """``state_of`` for :class:`RunConsole`: the newest task instance's state in the DB."""

    def state_of(task_id: str) -> str | None:
        from airflow.models.taskinstance import TaskInstance  # noqa: PLC0415 (lazy: loads airflow and sqlalchemy)
        from airflow.utils.session import create_session  # noqa: PLC0415 (lazy: loads airflow and sqlalchemy)
        from sqlalchemy import select  # noqa: PLC0415 (lazy: loads sqlalchemy)

        with create_session() as session:
            state = session.scalar(
                select(TaskInstance.state)
                .where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id)
                .order_by(TaskInstance.start_date.desc().nulls_last())
                .limit(1)
            )
        return str(state.value if hasattr(state, "value") else state) if state else None

    return state_of


def run_log_path(base: Path, name: str) -> Path:
    """``<base>/<name>-<UTC timestamp>.log``."""
    return Path(base) / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
