"""The project's DAG runs as the UI plugin lists them: Airflow's run records + their results.

:func:`get_run`, :func:`recent_runs` and :func:`task_states` read Airflow's metadata DB (the
plugin runs inside the api-server, with its session). :func:`outcome` says, from the run's
state and its tasks' states, whether it has results, failed, or was skipped as unchanged;
:func:`earlier_run_of_skip` finds which earlier run holds a skipped run's results (the
last-success record, :mod:`include.reruns.history`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from sqlalchemy import select

from include.costs.cluster import parse_timestamp

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SKIP_TASK = "skip_if_unchanged"
"""The short-circuit task of the three pipeline DAGs (``include.reruns.skip``)."""


@dataclass(frozen=True)
class RunInfo:
    """One DAG run, as Airflow recorded it."""

    dag_id: str
    run_id: str
    state: str
    start_date: datetime | None
    end_date: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).total_seconds()


def _info(run: Any) -> RunInfo:
    return RunInfo(
        dag_id=run.dag_id,
        run_id=run.run_id,
        state=str(run.state.value if hasattr(run.state, "value") else run.state),
        start_date=run.start_date,
        end_date=run.end_date,
    )


def get_run(session: Session, dag_id: str, run_id: str) -> RunInfo | None:
    """The run ``run_id`` of ``dag_id``, or None when Airflow has no such run."""

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return None if run is None else _info(run)


def recent_runs(session: Session, dag_ids: Sequence[str], limit: int = 50) -> list[RunInfo]:
    """The latest ``limit`` runs of ``dag_ids``, newest first."""

    if not dag_ids:
        return []
    rows = session.scalars(
        select(DagRun)
        .where(DagRun.dag_id.in_(list(dag_ids)))
        .order_by(DagRun.run_after.desc(), DagRun.id.desc())
        .limit(limit)
    ).all()
    return [_info(r) for r in rows]


def task_states(session: Session, dag_id: str, run_id: str) -> dict[str, str]:
    """``{task_id: state}`` of the run's task instances (``none`` for a task not started)."""

    rows = session.execute(
        select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
    ).all()
    return {task: str(getattr(state, "value", state) or "none") for task, state in rows}


@dataclass(frozen=True)
class Outcome:
    """Why a run has (or lacks) results: ``kind`` is results, skipped, failed or pending."""

    kind: str
    text: str


def outcome(run: RunInfo, states: Mapping[str, str], *, has_results: bool) -> Outcome:
    """What the run's page says: its results, or why it has none."""
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    if has_results:
        return Outcome("results", f"run {run.run_id} published its results")
    if run.state == "failed" or failed:
        first = [t for t in failed if states[t] == "failed"] or failed
        return Outcome(
            "failed",
            f"run {run.run_id} {run.state}: no results. Failed task(s): "
            f"{', '.join(first) or 'none recorded'} (see the task's log).",
        )
    skipped = sorted(t for t, s in states.items() if s == "skipped")
    if run.state == "success" and states.get(SKIP_TASK) == "success" and skipped:
        return Outcome(
            "skipped",
            f"run {run.run_id} was skipped as unchanged: same dataset, weights, settings and "
            "job package as an earlier successful run, whose results it reuses.",
        )
    if run.state in ("queued", "running"):
        return Outcome("pending", f"run {run.run_id} is {run.state}: no results yet.")
    return Outcome(
        "missing",
        f"run {run.run_id} ended {run.state} but its results are not here (deleted, or "
        "published under another results folder).",
    )


def earlier_run_of_skip(
    record: Mapping[str, Any] | None, skipped: RunInfo
) -> tuple[dict[str, Any] | None, str]:
    """(the last-success record of the run whose results a skipped run reused, or None; a note).

    The record is rewritten by every later success: it names the run the skip compared with
    only when it was written before the skipped run started. A later record names another
    run, whose results may differ: then None, and the note says so.
    """
    if not record or not record.get("run_id"):
        return None, "no last-success record: the earlier run is unknown"
    try:
        finished = parse_timestamp(record.get("finished_at"))
    except (TypeError, ValueError):
        finished = None
    if finished and skipped.start_date and finished <= skipped.start_date:
        return dict(record), f"the results of run {record['run_id']}"
    return None, (
        f"the last-success record now names run {record['run_id']}, a later success: the "
        "earlier run this one reused is no longer recorded"
    )
