"""The Serverless operators against moto with a job run QUEUED (job concurrency and queuing,
on by default from emr-7.3.0): a retry reuses it, the teardown cancels it, the sensor waits."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import boto3
import pytest

from include.emr_serverless.operators import (
    EmrServerlessCancelRunJobsOperator,
    EmrServerlessDeleteRunApplicationsOperator,
    EmrServerlessJobSensorWithLogs,
    EmrServerlessStartJobOnceOperator,
)
from tests.application_fakes import application_state, backend, create_application

REGION = "eu-west-1"
RUN_NAME = "fruits-pca fruits_emr_serverless_pipeline run-1"
RUN_TAGS = {"Project": "fruits-pca", "application_scope": "run"}
TEARDOWN = {"waiter_delay": 0, "waiter_max_attempts": 2, "aws_conn_id": None, "region_name": REGION}


@pytest.fixture
def client():
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("emr-serverless", region_name=REGION)


def _queued_run(client, app_id: str) -> str:
    """A job run of this run's name, QUEUED (moto makes it SUCCESS at once)."""
    run_id = client.start_job_run(
        applicationId=app_id,
        executionRoleArn="arn:aws:iam::123456789012:role/job",
        jobDriver={"sparkSubmit": {"entryPoint": "s3://bucket/job.py"}},
        name=RUN_NAME,
    )["jobRunId"]
    (run,) = [r for r in backend(REGION).job_runs[app_id] if r.id == run_id]
    run.state = "QUEUED"
    return run_id


def _app(client) -> str:
    return create_application(client, name="fruits-pca-run-x", tags=RUN_TAGS, age_hours=0.1)


def _state(client, app_id: str, run_id: str) -> str:
    return client.get_job_run(applicationId=app_id, jobRunId=run_id)["jobRun"]["state"]


def _context():
    return {"run_id": "manual__1", "ti": mock.MagicMock(), "dag": SimpleNamespace(dag_id="d")}


def test_a_retry_while_the_job_run_is_queued_reuses_it(client):
    app_id = _app(client)
    queued = _queued_run(client, app_id)
    start = EmrServerlessStartJobOnceOperator(
        task_id="start_job_run",
        application_id=app_id,
        execution_role_arn="arn:aws:iam::123456789012:role/job",
        job_driver={"sparkSubmit": {"entryPoint": "s3://bucket/job.py"}},
        configuration_overrides={},
        name=RUN_NAME,
        aws_conn_id=None,
        region_name=REGION,
    )
    assert start.execute(_context()) == queued
    runs = client.list_job_runs(applicationId=app_id)["jobRuns"]
    assert [r["id"] for r in runs] == [queued]  # no second job run was started


def test_teardown_cancels_a_queued_job_run(client):
    app_id = _app(client)
    queued = _queued_run(client, app_id)
    cancel = EmrServerlessCancelRunJobsOperator(
        task_id="cancel_job_run",
        application_id=app_id,
        job_run_name=RUN_NAME,
        **TEARDOWN,
    )
    assert cancel.execute(_context()) == [queued]
    assert _state(client, app_id, queued) == "CANCELLED"


def test_delete_cancels_a_queued_job_run_before_stopping_the_application(client):
    app_id = _app(client)
    queued = _queued_run(client, app_id)
    delete = EmrServerlessDeleteRunApplicationsOperator(
        task_id="delete_application",
        application_id=app_id,
        application_tags=RUN_TAGS,
        **TEARDOWN,
    )
    delete.execute(_context())
    assert _state(client, app_id, queued) == "CANCELLED"
    assert application_state(client, app_id) == "TERMINATED"


def test_the_sensor_keeps_waiting_while_the_job_run_is_queued(client):
    from airflow.providers.amazon.aws.triggers.emr import EmrServerlessJobSensorTrigger

    app_id = _app(client)
    queued = _queued_run(client, app_id)
    sensor = EmrServerlessJobSensorWithLogs(
        task_id="wait_for_job_run",
        application_id=app_id,
        job_run_id=queued,
        aws_conn_id=None,
        region_name=REGION,
    )
    assert sensor.poke(_context()) is False  # neither done nor failed
    # The deferrable wait: no acceptor of the provider's trigger matches QUEUED (retry).
    trigger = EmrServerlessJobSensorTrigger(
        application_id=app_id, job_run_id=queued, target_states=sensor.target_states
    )
    acceptors = trigger.waiter_config_overrides["acceptors"]
    assert {a["expected"] for a in acceptors} == {"SUCCESS", "FAILED", "CANCELLED", "CANCELLING"}
