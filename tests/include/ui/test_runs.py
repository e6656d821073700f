"""Why a run has no results, and which earlier run a skipped one reused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.ui.runs import RunInfo, earlier_run_of_skip, outcome

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _run(state: str) -> RunInfo:
    return RunInfo("fruits_local_pipeline", "r2", state, START, START + timedelta(seconds=30))


def test_the_duration_of_a_run():
    assert _run("success").duration_s == 30
    assert RunInfo("d", "r", "running", START, None).duration_s is None


def test_a_run_with_results():
    assert outcome(_run("success"), {}, has_results=True).kind == "results"


def test_a_failed_run_names_the_failed_task_not_the_upstream_failed_ones():
    states = {"validate_dataset": "failed", "run_feature_job": "upstream_failed"}
    result = outcome(_run("failed"), states, has_results=False)
    assert result.kind == "failed"
    assert "validate_dataset" in result.text
    assert "run_feature_job" not in result.text


def test_a_run_skipped_as_unchanged():
    states = {"skip_if_unchanged": "success", "prepare_spark_job": "skipped"}
    assert outcome(_run("success"), states, has_results=False).kind == "skipped"


def test_a_success_without_results_or_skip_says_they_are_missing():
    states = {"skip_if_unchanged": "success", "publish_results": "success"}
    result = outcome(_run("success"), states, has_results=False)
    assert result.kind == "missing"
    assert "not here" in result.text


def test_a_running_run_has_no_results_yet():
    assert outcome(_run("running"), {}, has_results=False).kind == "pending"


def test_the_record_written_before_the_skip_names_the_earlier_run():
    record = {"run_id": "r1", "finished_at": (START - timedelta(minutes=5)).isoformat()}
    earlier, note = earlier_run_of_skip(record, _run("success"))
    assert earlier == record
    assert "r1" in note


def test_a_record_rewritten_after_the_skip_is_not_taken_for_its_results():
    record = {"run_id": "r3", "finished_at": (START + timedelta(hours=1)).isoformat()}
    earlier, note = earlier_run_of_skip(record, _run("success"))
    assert earlier is None
    assert "r3, a later success" in note


def test_no_or_damaged_record():
    assert earlier_run_of_skip(None, _run("success"))[0] is None
    assert earlier_run_of_skip({"run_id": "r1", "finished_at": "??"}, _run("success"))[0] is None
