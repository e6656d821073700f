"""The local DAG's Spark operator: the apache-spark provider's ``SparkSubmitOperator``, except
that the job's refusal of its input is final.

``spark_jobs.cli`` exits with code 2 (``EXIT_BAD_INPUT``, also argparse's code for bad flags)
when its input cannot give results: no readable image, an unreadable weights file, a corrupt
feature cache. A retry reads the same input and fails the same way minutes later, so that exit
raises :class:`~airflow.exceptions.AirflowFailException` (no retry) with the job's own
``error:`` line first. Every other failure keeps the provider's retriable ``AirflowException``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

# spark_jobs.cli.EXIT_BAD_INPUT: the job ships alone to the nodes, so the code is repeated here
# and tests/include/local/test_operators.py checks that both agree.
JOB_EXIT_BAD_INPUT = 2
_EXIT_CODE = re.compile(r"Error code is: (\d+)")
_JOB_ERROR = re.compile(r"(?:^|\s)(error: .+)$")


def _keep_errors(lines: Iterable[str], errors: list[str]) -> Iterator[str]:
    """``lines`` unchanged, keeping the job's ``error: ...`` lines in ``errors`` on the way."""
    for line in lines:
        match = _JOB_ERROR.search(line.strip())
        if match:
            errors.append(match.group(1).strip())
        yield line


def exit_code(exc: AirflowException) -> int | None:
    """spark-submit's exit code in the provider's "Cannot execute" error, if it says one."""
    match = _EXIT_CODE.search(str(exc))
    return int(match.group(1)) if match else None


class SparkJobSubmitOperator(SparkSubmitOperator):
    """``SparkSubmitOperator`` that fails without retries when the job refuses its input."""

    def execute(self, context: Any) -> None:
        if self._hook is None:
            self._hook = self._get_hook()
        # The hook reads spark-submit's output in _process_spark_submit_log (and logs it through
        # structlog, which takes no handler): the job's error lines are read on the way in.
        # A private method of the pinned provider: tests/include/local/test_operators.py runs
        # the real hook on a fake spark-submit, so a change of it fails there.
        errors: list[str] = []
        process_log = self._hook._process_spark_submit_log

        def read_log(lines: Iterable[str]) -> None:
            process_log(_keep_errors(lines, errors))

        self._hook._process_spark_submit_log = read_log  # type: ignore[method-assign]
        try:
            super().execute(context)
        except AirflowException as exc:
            if exit_code(exc) != JOB_EXIT_BAD_INPUT:
                raise
            reason = errors[-1] if errors else "see the log above"
            raise AirflowFailException(
                f"the job refused its input ({reason}); spark-submit exit code "
                f"{JOB_EXIT_BAD_INPUT}: a retry would read the same input, so none is made"
            ) from exc
        finally:
            del self._hook._process_spark_submit_log  # the class's method again
