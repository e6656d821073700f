"""The retry-safe operators against moto: a failed create is not paid twice, late step logs."""

from __future__ import annotations

import gzip
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.config import PipelineConfig
from include.emr.logs import describe_step_failure
from include.emr.operators import EmrCreateClusterOperator
from include.emr.plan import build_run_plan
from include.emr_common.logs import wait_for_log
from include.params.cluster import emr_settings_from_params
from tests.emr_fakes import moto_clusters

REGION = "eu-west-1"
DAG_ID = "fruits_emr_pipeline"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"


@pytest.fixture
def aws():
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("emr", region_name=REGION)


def _plan(tmp_path, **config):
    cfg = PipelineConfig(bucket="b", results_dir=tmp_path, **config)
    return build_run_plan(emr_settings_from_params({}), cfg, dag_id=DAG_ID, run_id=RUN_ID)


def _create_task(overrides) -> EmrCreateClusterOperator:
    return EmrCreateClusterOperator(
        task_id="create_emr_cluster",
        emr_conn_id=None,
        aws_conn_id=None,
        region_name=REGION,
        job_flow_overrides=overrides,
        wait_for_completion=True,
        waiter_delay=1,
        waiter_max_attempts=3,
        deferrable=False,
    )


RUN_BEGAN = datetime.now(UTC)


def _context():
    # The operator reads dag_id, run_id and when the run began; the provider's console
    # links need a ti.
    return {
        "dag": SimpleNamespace(dag_id=DAG_ID),
        "run_id": RUN_ID,
        "dag_run": SimpleNamespace(run_after=RUN_BEGAN, logical_date=None, start_date=None),
        "ti": mock.MagicMock(),
    }


def _fail_cluster(cluster_id: str, message: str) -> None:
    """What EMR does when a bootstrap action fails (moto never does it on its own)."""
    (cluster,) = [c for c in moto_clusters() if c.id == cluster_id]
    cluster.state = "TERMINATED_WITH_ERRORS"
    cluster.last_state_change_reason = message


def test_retry_after_terminated_with_errors_fails_at_once_with_the_reason(aws, tmp_path):
    overrides = _plan(tmp_path)["job_flow_overrides"]
    first = _create_task(overrides).execute(_context())
    _fail_cluster(first, "bootstrap action 1 returned a non-zero return code")

    with pytest.raises(AirflowFailException, match="non-zero return code") as refused:
        _create_task(overrides).execute(_context())
    assert first in str(refused.value)
    assert len(aws.list_clusters()["Clusters"]) == 1  # no second cluster was paid for


def test_failed_clusters_of_older_runs_are_not_described(aws, tmp_path):
    """The failed-request lookup lists only clusters created since the run began (less an
    hour): an old failed cluster, even of the same request, costs no DescribeCluster."""
    overrides = _plan(tmp_path)["job_flow_overrides"]
    old = aws.run_job_flow(**overrides)["JobFlowId"]
    _fail_cluster(old, "an old failure")
    (cluster,) = [c for c in moto_clusters() if c.id == old]
    cluster.creation_datetime = (RUN_BEGAN - timedelta(days=3)).replace(tzinfo=None)

    task = _create_task(overrides)
    described: list[str] = []
    task.hook.conn.meta.events.register(
        "provide-client-params.emr.DescribeCluster",
        lambda params, **_: described.append(params["ClusterId"]),
    )
    created = task.execute(_context())  # not refused: the old failure is not this run's
    assert created != old
    assert old not in described


def test_retry_with_a_fixed_request_creates_a_new_cluster(aws, tmp_path):
    first = _create_task(_plan(tmp_path)["job_flow_overrides"]).execute(_context())
    _fail_cluster(first, "subnet has no route to the bootstrap source")
    fixed = _plan(tmp_path, subnet_id="subnet-fixed")["job_flow_overrides"]
    second = _create_task(fixed).execute(_context())
    assert second != first
    assert aws.describe_cluster(ClusterId=second)["Cluster"]["Status"]["State"] == "WAITING"


def test_cluster_that_went_straight_to_terminated_fails_the_create(aws, tmp_path):
    overrides = _plan(tmp_path)["job_flow_overrides"]
    # moto ends a cluster without steps at once when it is not kept alive: the provider's
    # job_flow_waiting waiter counts TERMINATED as success.
    ends_at_once = {**overrides, "Instances": {**overrides["Instances"]}}
    ends_at_once["Instances"]["KeepJobFlowAliveWhenNoSteps"] = False
    with pytest.raises(AirflowFailException, match="is TERMINATED instead of running"):
        _create_task(ends_at_once).execute(_context())


# ------------------------------------------------------------- a run of several steps


def test_sensor_waits_for_the_last_step_and_explains_the_failed_pack_step(
    aws, tmp_path, monkeypatch
):
    """A packing step first: it fails, EMR cancels the feature step (CANCEL_AND_WAIT), and
    the task log explains the packing step, not the cancelled one."""
    import include.emr.operators as operators
    from include.emr.operators import EmrStepSensorWithLogs
    from include.emr.plan import PACK_STEP_NAME, build_pack_step

    plan = _plan(tmp_path)
    cluster_id = _create_task(plan["job_flow_overrides"]).execute(_context())
    pack = build_pack_step(
        entry_script_uri="s3://b/e.py",
        py_files_uri="s3://b/z.zip",
        source_uri="s3://d/x/",
        dest_uri="s3://b/packed/",
    )
    step_ids = aws.add_job_flow_steps(JobFlowId=cluster_id, Steps=[pack, *plan["steps"]])["StepIds"]
    sensor = EmrStepSensorWithLogs(
        task_id="wait_for_feature_step",
        aws_conn_id=None,
        region_name=REGION,
        job_flow_id=cluster_id,
        step_id=step_ids,
        log_uri="s3://b/logs/",
        wait={"poke_interval": 1, "timeout": 5, "log_wait": 0},
    )
    reports: list[str] = []
    monkeypatch.setattr(
        operators, "describe_step_failure", lambda step, **kw: reports.append(step["Name"]) or ""
    )
    sensor._prepare()
    assert sensor.step_id == step_ids[-1]  # the feature step ends the run
    (cluster,) = [c for c in moto_clusters() if c.id == cluster_id]
    assert sensor.poke({}) is False  # pack RUNNING, feature PENDING: keep waiting
    cluster.steps[0].state, cluster.steps[1].state = "FAILED", "CANCELLED"
    with pytest.raises(AirflowFailException, match="CANCELLED"):
        sensor.poke({})
    assert reports == [PACK_STEP_NAME]
    cluster.steps[0].state, cluster.steps[1].state = "COMPLETED", "COMPLETED"
    assert sensor.poke({}) is True


# ------------------------------------------------------------------------- late step logs


@pytest.fixture
def s3_hook(aws):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="fruits-logs", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return S3Hook(aws_conn_id=None, region_name=REGION)


STEP = {"Id": "s-1", "Name": "extract", "Status": {"State": "FAILED"}}
STDERR_KEY = "emr/j-1/steps/s-1/stderr.gz"


def test_sensor_report_waits_for_a_late_stderr_and_says_so(s3_hook):
    """EMR uploads the log minutes after the failure: a thread plays that upload."""

    first_miss = threading.Event()
    said: list[str] = []

    def log(line: str) -> None:
        said.append(line)
        first_miss.set()

    def late_upload():
        first_miss.wait(timeout=30)  # upload only after the sensor found nothing once
        time.sleep(0.3)
        boto3.client("s3", region_name=REGION).put_object(
            Bucket="fruits-logs",
            Key=STDERR_KEY,
            Body=gzip.compress(b"Traceback\nValueError: boom\n"),
        )

    uploader = threading.Thread(target=late_upload)
    uploader.start()
    try:
        report = describe_step_failure(
            STEP,
            s3_hook=s3_hook,
            log_uri="s3://fruits-logs/emr/",
            cluster_id="j-1",
            wait_seconds=10,
            poll_seconds=0.1,
            log=log,
        )
    finally:
        uploader.join()
    assert "ValueError: boom" in report
    assert said  # it said it was waiting
    assert all("not there yet" in line for line in said)


def test_log_wait_is_bounded_and_reports_the_missing_log(s3_hook):
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # an injected clock: no real waiting
        slept.append(seconds)
        now[0] += seconds

    report = describe_step_failure(
        STEP,
        s3_hook=s3_hook,
        log_uri="s3://fruits-logs/emr/",
        cluster_id="j-1",
        wait_seconds=420,
        poll_seconds=15,
        log=lambda _: None,
        sleep=sleep,
        clock=lambda: now[0],
    )
    assert sum(slept) == pytest.approx(420)
    assert max(slept) <= 15
    assert "not there yet after waiting 420 s" in report


def test_no_wait_when_the_log_is_already_there(s3_hook):
    boto3.client("s3", region_name=REGION).put_object(
        Bucket="fruits-logs", Key=STDERR_KEY, Body=b"x"
    )

    def never(_seconds: float) -> None:
        raise AssertionError("slept although the log was there")

    assert wait_for_log(s3_hook, f"s3://fruits-logs/{STDERR_KEY}", wait_seconds=420, sleep=never)


# ------------------- the fault matrix's operator-level half (tests/dags/: one run per path)


def _terminate_task(job_flow_id: str | None):
    from include.emr.operators import EmrTerminateRunClustersOperator

    return EmrTerminateRunClustersOperator(
        task_id="terminate_emr_cluster",
        job_flow_id=job_flow_id,
        aws_conn_id=None,
        region_name=REGION,
    )


def _states(aws) -> dict[str, str]:
    return {c["Id"]: c["Status"]["State"] for c in aws.list_clusters()["Clusters"]}


@pytest.mark.parametrize("id_in_xcom", [True, False], ids=["known-id", "id-lost"])
def test_terminate_ends_every_cluster_of_the_run_and_only_those(aws, tmp_path, id_in_xcom):
    """After any failure once a cluster exists (create, add step, step, sensor timeout): the
    known cluster, and a cluster whose id never reached XCom, found by the run's tags."""
    overrides = _plan(tmp_path)["job_flow_overrides"]
    created = _create_task(overrides).execute(_context())
    lost = aws.run_job_flow(**overrides)["JobFlowId"]  # an earlier attempt's, say
    other_run = {**overrides, "Tags": [{"Key": "Project", "Value": "fruits-pca"}]}
    other = aws.run_job_flow(**other_run)["JobFlowId"]

    _terminate_task(created if id_in_xcom else None).execute(_context())

    states = _states(aws)
    assert {states[created], states[lost]} <= {"TERMINATING", "TERMINATED"}
    assert states[other] == "WAITING"


def test_terminate_with_no_cluster_of_the_run_succeeds(aws):
    """A failure before any cluster (validation, preflight, upload): nothing to end."""
    _terminate_task(None).execute(_context())
    assert _states(aws) == {}


def test_a_failing_add_steps_call_fails_the_task_and_adds_no_step(aws, tmp_path, monkeypatch):
    from airflow.providers.amazon.aws.hooks.emr import EmrHook

    from include.emr.operators import EmrAddStepOnceOperator

    plan = _plan(tmp_path)
    cluster_id = _create_task(plan["job_flow_overrides"]).execute(_context())

    def fail(self, **kwargs):
        raise RuntimeError("injected: AddJobFlowSteps failed")

    monkeypatch.setattr(EmrHook, "add_job_flow_steps", fail)
    add = EmrAddStepOnceOperator(
        task_id="add_feature_step",
        job_flow_id=cluster_id,
        steps=plan["steps"],
        aws_conn_id=None,
        region_name=REGION,
    )
    with pytest.raises(RuntimeError, match="AddJobFlowSteps failed"):
        add.execute(_context())
    assert aws.list_steps(ClusterId=cluster_id)["Steps"] == []


def test_a_step_that_never_ends_times_the_sensor_out(aws, tmp_path):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from include.emr.operators import EmrStepSensorWithLogs

    plan = _plan(tmp_path)
    cluster_id = _create_task(plan["job_flow_overrides"]).execute(_context())
    (step_id,) = aws.add_job_flow_steps(JobFlowId=cluster_id, Steps=plan["steps"])["StepIds"]
    sensor = EmrStepSensorWithLogs(
        task_id="wait_for_feature_step",
        aws_conn_id=None,
        region_name=REGION,
        job_flow_id=cluster_id,
        step_id=[step_id],
        wait={"poke_interval": 0.2, "timeout": 1, "log_wait": 0},
    )
    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(_context())  # moto leaves the step RUNNING
    assert time.monotonic() - started < 10
    (step,) = aws.list_steps(ClusterId=cluster_id)["Steps"]
    assert step["Status"]["State"] == "RUNNING"  # the teardown, not the sensor, ends it
