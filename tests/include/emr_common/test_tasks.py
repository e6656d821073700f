"""What both EMR DAGs' task bodies share (include/emr_common/tasks.py)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.emr_common.tasks import fail_run


def test_the_watcher_names_the_cluster_it_saw_and_who_removes_it():
    with pytest.raises(AirflowFailException) as failed:
        fail_run("cluster", "j-ABC123", teardown="terminate_emr_cluster")

    message = str(failed.value)
    assert message.startswith("a task of this run failed; cluster j-ABC123 is removed by")
    assert "terminate_emr_cluster, which runs whatever failed" in message
    assert "was terminated" not in message  # it may not have run yet


def test_the_watcher_claims_no_cluster_when_none_was_recorded():
    with pytest.raises(AirflowFailException) as failed:
        fail_run("cluster", None, teardown="terminate_emr_cluster")

    message = str(failed.value)
    assert "no cluster id was recorded" in message
    assert "terminated" not in message
    assert "looks for it by this run's tags" in message


def test_the_serverless_watcher_speaks_of_its_application():
    with pytest.raises(AirflowFailException, match="no EMR Serverless application id"):
        fail_run("EMR Serverless application", "", teardown="delete_emr_serverless_application")
