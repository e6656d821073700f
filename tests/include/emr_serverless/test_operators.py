"""The Serverless operators against moto with a job run QUEUED (job concurrency and queuing,
on by default from emr-7.3.0): a retry reuses it, the teardown cancels it, the sensor waits."""

from __future__ import annotations

import time
from pathlib import Path
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


def _sensor(app_id: str, run_id: str) -> EmrServerlessJobSensorWithLogs:
    return EmrServerlessJobSensorWithLogs(
        task_id="wait_for_job_run",
        application_id=app_id,
        job_run_id=run_id,
        aws_conn_id=None,
        region_name=REGION,
    )


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
    sensor = _sensor(app_id, queued)
    assert sensor.poke(_context()) is False  # neither done nor failed
    # The deferrable wait: no acceptor of the provider's trigger matches QUEUED (retry).
    trigger = EmrServerlessJobSensorTrigger(
        application_id=app_id, job_run_id=queued, target_states=sensor.target_states
    )
    acceptors = trigger.waiter_config_overrides["acceptors"]
    assert {a["expected"] for a in acceptors} == {"SUCCESS", "FAILED", "CANCELLED", "CANCELLING"}


def test_a_job_run_that_never_ends_times_the_sensor_out(client):
    """The DAG's sensor_timeout fault at the operator level: the wait ends at its timeout,
    the job run is left to the teardown (test_teardown_cancels_a_queued_job_run)."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    app_id = _app(client)
    queued = _queued_run(client, app_id)
    sensor = _sensor(app_id, queued)
    sensor.wait = {"poke_interval": 0.2, "timeout": 1, "log_wait": 0}
    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(_context())
    assert time.monotonic() - started < 10
    assert _state(client, app_id, queued) == "QUEUED"


# ---------------------------------------------------------------------------- download race


def _finished_run_and_results(client, tmp_path):
    """An application whose job run SUCCEEDED, the job's outputs in S3, and the run's plan."""
    from include.config import PipelineConfig
    from include.emr_serverless.plan import build_serverless_run_plan
    from include.params.serverless import serverless_settings_from_params
    from tests.emr_fakes import write_job_outputs

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(
        Bucket="fruits-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    config = PipelineConfig(bucket="fruits-bucket", region=REGION, results_dir=tmp_path)
    plan = build_serverless_run_plan(
        serverless_settings_from_params({}), config, dag_id="d", run_id="manual__1"
    )
    plan = {**plan, "aws_conn_id": None}
    write_job_outputs(s3, plan["uris"]["output"], plan["run_key"])
    app_id = _app(client)
    run_id = _queued_run(client, app_id)
    (run,) = [r for r in backend(REGION).job_runs[app_id] if r.id == run_id]
    run.state = "SUCCESS"
    run.billed_resource_utilization = {"vCPUHour": 0.5, "memoryGBHour": 2.0, "storageGBHour": 0}
    return plan, app_id, run_id


def _forget_application(app_id: str) -> None:
    """What the teardown leaves: an application (and its job runs) AWS no longer knows."""
    backend(REGION).applications.pop(app_id)
    backend(REGION).job_runs.pop(app_id)


def test_download_after_the_teardown_uses_what_the_wait_read(client, tmp_path):
    from include.emr_serverless.tasks import download_results
    from include.results.serverless_cost import load_serverless_cost

    plan, app_id, run_id = _finished_run_and_results(client, tmp_path)
    sensor = _sensor(app_id, run_id)
    assert sensor.poke(_context()) is True
    finished = sensor.finished_run
    _forget_application(app_id)  # the teardown ran first

    folder = download_results(plan, application_id=app_id, job_run_id=run_id, finished=finished)
    cost = load_serverless_cost(Path(folder))
    assert cost["job_run_id"] == run_id
    assert cost["vcpu_hours"] == 0.5
    assert cost["estimated_usd"] > 0
    assert (Path(folder) / "metrics.json").is_file()


def test_download_without_what_the_wait_read_still_gets_the_results(client, tmp_path, caplog):
    from include.emr_serverless.tasks import download_results
    from include.results.serverless_cost import serverless_cost_section

    plan, app_id, run_id = _finished_run_and_results(client, tmp_path)
    _forget_application(app_id)

    folder = download_results(plan, application_id=app_id, job_run_id=run_id)
    assert (Path(folder) / "metrics.json").is_file()
    assert list((Path(folder) / "pca").glob("*.parquet"))
    assert "deleted by the teardown" in caplog.text
    html = serverless_cost_section(Path(folder), None)
    assert "cost estimate unavailable" in html
    assert "deleted by the teardown" in html
