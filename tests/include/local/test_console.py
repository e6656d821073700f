"""The quiet console: output to the log file (child processes too), task lines on the
terminal, and a failure report with the failing task's log and the job's reason."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from include.local.console import RunConsole, spark_stage_progress


def _fake_run() -> None:
    """What a dag.test() run writes to fds 1/2: task boundaries and task output."""
    os.write(1, b"[info] [DAG TEST] starting task_id=validate_params map_index=-1\n")
    os.write(1, b"plan made\n")
    os.write(1, b"[info] [DAG TEST] end task task_id=validate_params map_index=-1\n")
    os.write(1, b"[info] [DAG TEST] starting task_id=run_feature_job map_index=-1\n")
    # A child process writes to the same file descriptors (spark-submit does).
    subprocess.run(
        [sys.executable, "-c", "import sys; print('error: no decodable image', file=sys.stderr)"],
        check=True,
    )
    os.write(2, b"Traceback ... AirflowException\n")
    os.write(1, b"[info] [DAG TEST] end task task_id=run_feature_job map_index=-1\n")


def test_task_lines_on_the_terminal_everything_else_in_the_log(tmp_path):
    terminal = io.StringIO()
    states = {"validate_params": "success", "run_feature_job": "failed"}
    log = tmp_path / "logs" / "run.log"
    with RunConsole(log, state_of=states.get, terminal=terminal) as console:
        _fake_run()
        console.catch_up()
        console.say("closing summary")

    shown = terminal.getvalue()
    assert f"full log: {log}" in shown
    assert "start    validate_params" in shown
    assert "success  validate_params (" in shown
    assert "failed   run_feature_job (" in shown
    assert "closing summary" in shown
    assert "plan made" not in shown
    assert "error: no decodable image" not in shown
    text = log.read_text()
    assert "plan made" in text
    assert "error: no decodable image" in text  # the child's output too

    report = console.failure_report({**states, "fail_run_if_any_task_failed": "failed"})
    assert report.startswith("failed: run_feature_job, fail_run_if_any_task_failed")
    assert "last lines of run_feature_job's log:" in report
    assert "  | Traceback ... AirflowException" in report
    assert "plan made" not in report  # only the failing task's own section
    assert "the job's own reason: error: no decodable image" in report
    # the reason comes right after the failed tasks, before the log's tail
    assert report.splitlines()[1] == "the job's own reason: error: no decodable image"
    assert report.index("the job's own reason") < report.index("last lines of")
    assert str(log) in report


def test_spark_stage_progress_reads_the_last_bar():
    text = "[Stage 3:=====>   (5 + 2) / 10]\r[Stage 4:>   (0 + 2) / 8]\r"
    assert spark_stage_progress(text) == "Spark stage 4: 0/8 tasks done, 2 running"
    assert spark_stage_progress("no bars") is None
