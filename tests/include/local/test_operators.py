"""The local DAG's spark-submit operator: the job's exit 2 is final, other failures retry.

A fake ``spark-submit`` script plays the job: it prints what the job prints and exits with the
job's code, through the provider's real hook (``subprocess.Popen`` of ``spark_binary``).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.local.operators import JOB_EXIT_BAD_INPUT, SparkJobSubmitOperator, exit_code
from spark_jobs import cli


@pytest.fixture(autouse=True)
def _spark_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_FAKE", '{"conn_type": "spark", "host": "local[1]"}')


def _fake_spark_submit(tmp_path: Path, *, lines: list[str], code: int) -> str:
    script = tmp_path / "spark-submit"
    echo = "\n".join(f"echo {line!r}" for line in lines)
    script.write_text(f"#!/bin/sh\n{echo}\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _operator(spark_binary: str) -> SparkJobSubmitOperator:
    return SparkJobSubmitOperator(
        task_id="run_feature_job",
        conn_id="spark_fake",
        spark_binary=spark_binary,
        application="job.py",
        retries=2,
    )


def test_the_code_agrees_with_the_job():
    assert JOB_EXIT_BAD_INPUT == cli.EXIT_BAD_INPUT


def test_bad_input_fails_without_retry_and_says_the_jobs_reason(tmp_path):
    binary = _fake_spark_submit(
        tmp_path,
        lines=[
            "26/12/07 INFO SparkContext: Running Spark version 3.5.6",
            "error: no valid images under /data/fruits: 3 files, all unreadable",
            "26/12/07 INFO ShutdownHookManager: Shutdown hook called",
        ],
        code=JOB_EXIT_BAD_INPUT,
    )

    with pytest.raises(AirflowFailException) as raised:
        _operator(binary).execute({})

    message = str(raised.value)
    assert message.startswith(
        "the job refused its input (error: no valid images under /data/fruits"
    )
    assert "exit code 2" in message
    assert "a retry would read the same input" in message


def test_bad_input_without_an_error_line_still_fails_for_good(tmp_path):
    binary = _fake_spark_submit(tmp_path, lines=["usage: cli.py [-h] ..."], code=2)

    with pytest.raises(AirflowFailException, match=r"refused its input \(see the log above\)"):
        _operator(binary).execute({})


@pytest.mark.parametrize("code", [1, 137])
def test_other_failures_stay_retriable(tmp_path, code):
    binary = _fake_spark_submit(tmp_path, lines=["error: executor lost"], code=code)

    with pytest.raises(AirflowException) as raised:
        _operator(binary).execute({})

    assert not isinstance(raised.value, AirflowFailException)
    assert exit_code(raised.value) == code


def test_success_passes_through_and_leaves_no_handler(tmp_path):
    operator = _operator(_fake_spark_submit(tmp_path, lines=["done"], code=0))

    operator.execute({})

    # the hook is left as the provider made it
    assert "_process_spark_submit_log" not in vars(operator._hook)
