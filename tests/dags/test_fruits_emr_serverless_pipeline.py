"""The EMR Serverless DAG end to end, offline: ``dag.test()`` against in-process moto.

moto's EMR Serverless marks a job run SUCCESS the moment it is started. The tests make
new job runs start SUBMITTED instead (moto's ``JOB_STATUS``), and ``FakeServerlessJob``
plays EMR Serverless's part from a background thread: it reads the job driver's arguments,
then (by scenario) writes the job's outputs where ``--output`` / ``--run-id`` say and marks
the job run SUCCESS with billed resources, or writes the driver's gzipped stderr under the
run's log URI and marks it FAILED, or leaves it RUNNING (for the sensor timeout).

Every run asserts through the service (application and job run states, S3 objects) and the
task instance states, not through mocks. Retry delays are zeroed.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from include.emr_serverless.applications import ACTIVE_JOB_RUN_STATES
from tests.dag_wiring import XComOf, assert_task_calls
from tests.emr_fakes import prepare_account, step_arg, write_job_outputs

REGION = "eu-west-1"
BUCKET = "fruits-test-bucket"
PREFIX = "fruits"
DAG_ID = "fruits_emr_serverless_pipeline"
FAST = {
    "poke_interval_seconds": 1,
    "job_timeout_seconds": 60,
    "job_log_wait_seconds": 0,
    "weights": "none",
    "pack_dataset": False,
}
STDERR_TEXT = (
    "Traceback (most recent call last):\n"
    '  File "entrypoint.py", line 4, in <module>\n'
    "ValueError: zero valid images under s3://fruits-test-bucket/fruits/datasets/x\n"
    "aws_secret_access_key=abcdefSECRET123\n"
)
BILLED = {"vCPUHour": 0.5, "memoryGBHour": 2.0, "storageGBHour": 0.0}
CREATE_TASK = "create_emr_serverless_application"
LIVE_APP_STATES = ("CREATING", "CREATED", "STARTING", "STARTED", "STOPPING")


def moto_job_runs() -> list[Any]:
    """Every job run in moto's backend, all regions (a moto *server* may file a request
    signed for eu-west-1 under another region)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emrserverless.models import emrserverless_backends

    return [
        run
        for backend in emrserverless_backends[DEFAULT_ACCOUNT_ID].values()
        for runs in list(backend.job_runs.values())
        for run in list(runs)
    ]


class FakeServerlessJob:
    """Moves moto's SUBMITTED job runs to an end state the way EMR Serverless would.

    scenario: "complete" | "fail" | "hang" | "no_success_marker".
    """

    def __init__(self, scenario: str, *, endpoint_url: str | None = None) -> None:
        self.scenario = scenario
        self.endpoint_url = endpoint_url
        self.seen: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FakeServerlessJob:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=self.endpoint_url)
        while not self._stop.is_set():
            try:
                for run in moto_job_runs():
                    if run.state == "SUBMITTED":
                        self._finish(s3, run)
            except Exception as exc:  # surfaced by the test, not lost in the thread
                self.errors.append(exc)
                return
            time.sleep(0.05)

    def _finish(self, s3: Any, run: Any) -> None:
        driver = run.job_driver["sparkSubmit"]
        args = list(driver["entryPointArguments"])
        self.seen.append({"application": run.application_id, "job_run": run.id, "driver": driver})
        if self.scenario == "hang":
            run.state = "RUNNING"
            return
        if self.scenario == "fail":
            log_uri = run.configuration_overrides["monitoringConfiguration"][
                "s3MonitoringConfiguration"
            ]["logUri"]
            bucket, _, base = log_uri.removeprefix("s3://").partition("/")
            key = (
                f"{base.rstrip('/')}/applications/{run.application_id}/jobs/{run.id}"
                "/SPARK_DRIVER/stderr.gz"
            )
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(STDERR_TEXT.encode()))
            run.state_details = "Job failed, please check complete logs in configured logging"
            run.state = "FAILED"
            return
        write_job_outputs(
            s3,
            step_arg(args, "--output"),
            step_arg(args, "--run-id"),
            success=self.scenario != "no_success_marker",
        )
        run.billed_resource_utilization = dict(BILLED)
        run.total_execution_duration_seconds = 95
        run.state = "SUCCESS"


def fake_env_build(requirements, constraints, dest, platform, python_version):
    """Stands in for the packed-environment build (minutes, needs uv): a tar.gz with
    ``bin/python`` at its root, which is what ``archive_problems`` checks."""
    with tarfile.open(dest, "w:gz") as tar:
        info = tarfile.TarInfo("bin/python")
        payload = f"#!/bin/sh\n# {platform} {python_version}\n".encode()
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def serverless_aws(aws_env, monkeypatch) -> Iterator[None]:
    """In-process moto with the emulated account (bucket, cluster roles, job runtime role);
    new job runs start SUBMITTED; the environment build is the fake."""
    from moto import mock_aws

    monkeypatch.setattr("moto.emrserverless.models.JOB_STATUS", "SUBMITTED")
    monkeypatch.setattr("include.staging.serverless_env.build_packed_env", fake_env_build)
    with mock_aws():
        prepare_account(BUCKET, REGION)
        yield


@pytest.fixture
def serverless_dag(dagbag, airflow_db, monkeypatch, job_source):
    """The Serverless DAG with retry delays zeroed (retries still happen, at once)."""
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag


def run_dag(dag: Any, **conf: Any) -> tuple[str, dict[str, str]]:
    """``dag.test()`` with every Param (defaults + ``conf``); (run state, {task: state})."""
    from include.params.serverless import serverless_params

    dag_run = dag.test(run_conf={**{n: p.value for n, p in serverless_params().items()}, **conf})
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return str(dag_run.state), states


def applications(endpoint_url: str | None = None) -> dict[str, dict[str, Any]]:
    client = boto3.client("emr-serverless", region_name=REGION, endpoint_url=endpoint_url)
    return {
        a["id"]: client.get_application(applicationId=a["id"])["application"]
        for a in client.list_applications()["applications"]
    }


def s3_keys() -> list[str]:
    s3 = boto3.client("s3", region_name=REGION)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def assert_nothing_left_running() -> None:
    live = {i: a["state"] for i, a in applications().items() if a["state"] in LIVE_APP_STATES}
    assert not live, f"applications left started: {live}"
    running = [(r.id, r.state) for r in moto_job_runs() if r.state in ACTIVE_JOB_RUN_STATES]
    assert not running, f"job runs left running: {running}"


# ---------------------------------------------------------------------------- happy path


@pytest.mark.slow
def test_happy_path_creates_runs_downloads_and_deletes(
    serverless_dag, serverless_aws, aws_env, sample_dataset
):
    with FakeServerlessJob("complete") as job:
        state, tasks = run_dag(serverless_dag, dataset_dir=str(sample_dataset), **FAST)
    assert not job.errors
    assert state == "success", tasks
    assert tasks["fail_run_if_any_task_failed"] == "skipped"
    assert all(s == "success" for t, s in tasks.items() if t != "fail_run_if_any_task_failed")

    (app,) = applications().values()
    assert app["state"] == "TERMINATED"  # created for this run, deleted by it
    assert app["releaseLabel"] == "emr-7.12.0"
    assert app["autoStopConfiguration"] == {"enabled": True, "idleTimeoutMinutes": 15}
    assert app["maximumCapacity"] == {"cpu": "10 vCPU", "memory": "40 GB", "disk": "60 GB"}
    assert app["tags"]["Project"] == "fruits-features"
    assert app["tags"]["dag_id"] == DAG_ID

    (seen,) = job.seen
    (run,) = moto_job_runs()
    assert run.execution_role_arn.endswith(":role/fruits-features-emr-serverless-job")
    assert run.execution_timeout_minutes == 5  # the 60 s job timeout, at the API's minimum
    driver = seen["driver"]
    keys = s3_keys()
    assert driver["entryPoint"].removeprefix(f"s3://{BUCKET}/") in keys
    args = driver["entryPointArguments"]
    assert (
        step_arg(args, "--input")
        == f"s3://{BUCKET}/{PREFIX}/datasets/{sample_dataset.name}/images/"
    )
    assert step_arg(args, "--task-slots") == "8"  # 2 executors x 4 vCPU
    params = driver["sparkSubmitParameters"].split(" ")
    confs = dict(p.split("=", 1) for p in params[1::2] if "=" in p)
    archive = confs["spark.archives"].removesuffix("#environment")
    assert archive.removeprefix(f"s3://{BUCKET}/") in keys  # the staged environment
    assert confs["spark.executor.instances"] == "2"
    assert confs["spark.dynamicAllocation.enabled"] == "false"
    assert params[params.index("--py-files") + 1].endswith("/spark_jobs.zip")

    (run_dir,) = [p for p in (aws_env / DAG_ID).iterdir() if p.is_dir()]
    saved = json.loads((run_dir / "job_run.json").read_text())
    assert saved["jobRun"]["billedResourceUtilization"] == BILLED
    html = (run_dir / "report" / "report.html").read_text()
    assert "EMR Serverless cost" in html
    assert "0.5000" in html
    assert "2.0000" in html
    assert "Estimated vs actual instance-hours" not in html
    assert any(k.endswith("/report/report.html") for k in keys)


@pytest.mark.slow
def test_shared_application_is_reused_and_only_stopped(
    serverless_dag, serverless_aws, sample_dataset
):
    """reuse_application: the second run finds the first one's application by name + tags;
    neither run deletes it, both stop it."""
    conf = {"dataset_dir": str(sample_dataset), "reuse_application": True, "force": True, **FAST}
    with FakeServerlessJob("complete") as job:
        first, _ = run_dag(serverless_dag, **conf)
        second, tasks = run_dag(serverless_dag, **conf)
    assert not job.errors
    assert (first, second) == ("success", "success"), tasks
    (app,) = applications().values()
    assert app["state"] == "STOPPED"
    assert app["tags"]["application_scope"] == "shared"
    assert len({seen["application"] for seen in job.seen}) == 1
    assert len(job.seen) == 2


# ---------------------------------------------------------------------------- fault matrix


def spy_failure_reports(monkeypatch) -> list[str]:
    import include.emr_serverless.operators

    reports: list[str] = []
    original = include.emr_serverless.operators.describe_job_run_failure

    def spy(*args, **kwargs):
        reports.append(original(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(include.emr_serverless.operators, "describe_job_run_failure", spy)
    return reports


def _fail_task(operator: str, *, after: bool, times: int | None = None):
    """Make an operator of ``include.emr_serverless.operators`` fail before (or after) it did
    its work; every attempt, or only the first ``times``."""

    def inject(monkeypatch):
        import include.emr_serverless.operators as operators

        cls = getattr(operators, operator)
        original = cls.execute
        failures: list[str] = []

        def execute(self, context, *args, **kwargs):
            if times is not None and len(failures) >= times:
                return original(self, context, *args, **kwargs)
            if after:
                original(self, context, *args, **kwargs)
            failures.append(self.task_id)
            raise RuntimeError(f"injected: {self.task_id} failed {'after' if after else 'before'}")

        monkeypatch.setattr(cls, "execute", execute)
        return failures

    return inject


CREATE = "EmrServerlessCreateOrReuseApplicationOperator"
START = "EmrServerlessStartJobOnceOperator"
# One whole-DAG run per path a failure takes through the DAG: before any application or
# upload, an application (or a job run) whose id never reached XCom (the teardown finds it
# by name and tags), the job run failing (its report reaches the log), after the job run.
# Each other fault's own task is tested on its own: validation
# (tests/include/datasets/test_local.py; test_bad_params_... below takes the same path),
# upload (tests/include/datasets/test_upload.py), the environment build
# (tests/include/staging/test_serverless_env.py), the sensor's timeout and the teardown
# (tests/include/emr_serverless/test_operators.py); the DAG's wiring: test_pipeline_shape.
FAULTS = {
    # name: (inject, scenario, extra Params, failing task, an application was created)
    "preflight": (None, "complete", {"_role": "no-such-role"}, "preflight", False),
    "create_after": (_fail_task(CREATE, after=True), "complete", {}, CREATE_TASK, True),
    "start_after": (_fail_task(START, after=True), "hang", {}, "start_job_run", True),
    "job_failed": (None, "fail", {}, "wait_for_job_run", True),
    "download": (None, "no_success_marker", {}, "download_results", True),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix_leaves_nothing_running_and_fails_run(
    fault, serverless_dag, serverless_aws, sample_dataset, monkeypatch
):
    inject, scenario, extra, failing_task, created = FAULTS[fault]
    reports = spy_failure_reports(monkeypatch)
    extra = dict(extra)
    if "_role" in extra:
        monkeypatch.setenv("FRUITS_SERVERLESS_JOB_ROLE", extra.pop("_role"))
    conf = {"dataset_dir": str(sample_dataset), **FAST, **extra}
    if inject:
        inject(monkeypatch)
    with FakeServerlessJob(scenario) as job:
        state, tasks = run_dag(serverless_dag, **conf)
    assert not job.errors
    summary = ", ".join(f"{t}={s}" for t, s in sorted(tasks.items()))
    print(f"\nFAULT {fault}: run={state} tasks: {summary}")

    assert state == "failed", summary
    assert tasks[failing_task] == "failed", summary
    assert tasks["cancel_job_run"] == "success", summary
    assert tasks["delete_emr_serverless_application"] == "success", summary
    assert tasks["fail_run_if_any_task_failed"] == "failed", summary
    assert_nothing_left_running()
    apps = applications()
    assert bool(apps) == created, apps
    assert all(a["state"] == "TERMINATED" for a in apps.values()), apps
    if fault == "job_failed":
        (report,) = reports
        assert "is FAILED" in report
        assert "ValueError: zero valid images" in report  # the driver's stderr tail
        assert "abcdefSECRET123" not in report  # secrets are masked
    if scenario == "hang":
        # The job run was still running when the run failed: the teardown cancelled it.
        assert {r.state for r in moto_job_runs()} == {"CANCELLED"}
    if fault == "preflight":
        assert not any(k.startswith(f"{PREFIX}/runs/") for k in s3_keys())


@pytest.mark.slow
def test_retries_reuse_the_application_and_the_job_run(
    serverless_dag, serverless_aws, sample_dataset, monkeypatch
):
    """Create and start each fail once after the service accepted them (the ids never
    reached XCom): the retries find both by name and tags, the run succeeds, one of each."""
    created = _fail_task(CREATE, after=True, times=1)(monkeypatch)
    started = _fail_task(START, after=True, times=1)(monkeypatch)
    with FakeServerlessJob("complete"):
        state, tasks = run_dag(serverless_dag, dataset_dir=str(sample_dataset), **FAST)
    assert state == "success", tasks
    assert (len(created), len(started)) == (1, 1)
    assert len(applications()) == 1
    assert len(moto_job_runs()) == 1
    assert_nothing_left_running()


@pytest.mark.slow
@pytest.mark.integration
def test_deferrable_wait_against_moto_server(serverless_dag, aws_env, sample_dataset, monkeypatch):
    """Deferrable sensor: its trigger polls a moto server on 127.0.0.1 (aiobotocore)."""
    from moto.server import ThreadedMotoServer

    monkeypatch.setattr("moto.emrserverless.models.JOB_STATUS", "SUBMITTED")
    monkeypatch.setattr("include.staging.serverless_env.build_packed_env", fake_env_build)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        assert host == "127.0.0.1"
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {"conn_type": "aws", "extra": {"region_name": REGION, "endpoint_url": endpoint}}
            ),
        )
        prepare_account(BUCKET, REGION, endpoint_url=endpoint)
        with FakeServerlessJob("complete", endpoint_url=endpoint) as job:
            state, tasks = run_dag(
                serverless_dag, dataset_dir=str(sample_dataset), deferrable=True, **FAST
            )
        assert not job.errors
        assert state == "success", tasks
        assert len(job.seen) == 1
        assert {a["state"] for a in applications(endpoint).values()} == {"TERMINATED"}
    finally:
        server.stop()


# ---------------------------------------------------------------------------- bad Params


# The task bodies are plain functions of include/ (tests/include/emr_serverless/test_tasks.py
# etc.): here, only that each task calls its function with what the task receives.
WIRED = {
    # task id: (the function's module, its name, the task's arguments, the call expected)
    "validate_params": (
        "include.emr_serverless.tasks",
        "validate_params",
        {"params": {"mode": "mini"}, "dag_run": SimpleNamespace(dag_id=DAG_ID, run_id="r1")},
        (({"mode": "mini"},), {"dag_id": DAG_ID, "run_id": "r1"}),
    ),
    "preflight": (
        "dags.fruits_emr_serverless_pipeline",
        "preflight_serverless_run",
        {"plan": {"p": 1}},
        (({"p": 1},), {}),
    ),
    "skip_if_unchanged": (
        "dags.fruits_emr_serverless_pipeline",
        "skip_unchanged_run",
        {"plan": {"p": 1}, "params": {"force": True}, "run_id": "r1"},
        (("emr-serverless", {"force": True}), {"plan": {"p": 1}, "run_id": "r1"}),
    ),
    "check_budget": (
        "dags.fruits_emr_serverless_pipeline",
        "check_run_budget",
        {"plan": {"region": "eu-west-3"}, "dataset": {"images": 3}, "params": {"force": True}},
        (("emr-serverless", {"images": 3}, {"force": True}), {"region": "eu-west-3"}),
    ),
    "stage_job_environment": (
        "include.emr_serverless.tasks",
        "stage_job_environment",
        {"plan": {"p": 1}},
        (({"p": 1},), {}),
    ),
    "download_results": (
        "include.emr_serverless.tasks",
        "download_results",
        {"plan": {"p": 1}, "application_id": "a1", "job_run_id": "j1", "finished": {"f": 1}},
        (({"p": 1},), {"application_id": "a1", "job_run_id": "j1", "finished": {"f": 1}}),
    ),
}


@pytest.mark.parametrize("task_id", list(WIRED))
def test_each_task_calls_its_include_function(task_id, dagbag, monkeypatch):
    assert_task_calls(dagbag.dags[DAG_ID].task_dict[task_id], WIRED[task_id], monkeypatch)


def test_the_watcher_fails_the_run_naming_the_teardown(dagbag):
    from airflow.sdk.exceptions import AirflowFailException

    watcher = dagbag.dags[DAG_ID].task_dict["fail_run_if_any_task_failed"]
    created = XComOf("00fabc123")
    with pytest.raises(AirflowFailException, match="application 00fabc123 is removed by cancel"):
        watcher.python_callable(ti=created)
    assert created.asked == ["create_emr_serverless_application"]
    with pytest.raises(AirflowFailException, match="no EMR Serverless application id was"):
        watcher.python_callable(ti=XComOf(None))


@pytest.mark.slow
def test_bad_params_fail_the_run_before_any_aws_call(
    serverless_dag, serverless_aws, sample_dataset, monkeypatch
):
    calls: list[str] = []
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def record(self, name, params):
        calls.append(name)
        return original(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    state, tasks = run_dag(
        serverless_dag, dataset_dir=str(sample_dataset), **{**FAST, "executor_memory_gb": 31}
    )
    teardown = {"cancel_job_run", "delete_emr_serverless_application"}
    assert state == "failed"
    assert tasks["validate_params"] == "failed"
    assert {tasks[t] for t in ("upload_dataset", "create_emr_serverless_application")} == {
        "upstream_failed"
    }
    assert {tasks[t] for t in teardown} == {"success"}  # ran, found nothing
    # Only the teardown's look-ups reached AWS: nothing was created or uploaded.
    assert set(calls) <= {"ListApplications", "GetApplication"}, calls
    assert applications() == {}
    assert s3_keys() == []


SCHEMA_BAD = {
    "mode": "huge",
    "executor_vcpu": 3,
    "executors": 0,
    "worker_disk_gb": 10,
    "architecture": "POWER9",
    "release_label": "emr-6.15.0",
    "idle_timeout_minutes": 0,
    "reuse_application": "yes",
}


@pytest.mark.parametrize(("name", "value"), list(SCHEMA_BAD.items()))
def test_trigger_form_rejects_bad_values(name, value, dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[DAG_ID].params)
    params.validate()  # the defaults are valid
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {name}"):
        params[name] = value


# ---------------------------------------------------------------------------- structure


def test_pipeline_shape(dagbag):
    from airflow.providers.amazon.aws.operators.emr import (
        EmrServerlessCreateApplicationOperator,
        EmrServerlessDeleteApplicationOperator,
        EmrServerlessStartJobOperator,
    )
    from airflow.providers.amazon.aws.sensors.emr import EmrServerlessJobSensor

    dag = dagbag.dags[DAG_ID]
    tasks = dag.task_dict
    assert dag.max_active_runs == 1
    assert isinstance(
        tasks["create_emr_serverless_application"], EmrServerlessCreateApplicationOperator
    )
    assert isinstance(tasks["start_job_run"], EmrServerlessStartJobOperator)
    assert isinstance(tasks["wait_for_job_run"], EmrServerlessJobSensor)
    assert isinstance(
        tasks["delete_emr_serverless_application"], EmrServerlessDeleteApplicationOperator
    )
    for teardown in ("cancel_job_run", "delete_emr_serverless_application"):
        assert tasks[teardown].trigger_rule == "all_done"
    assert "wait_for_job_run" in tasks["cancel_job_run"].upstream_task_ids
    assert "cancel_job_run" in tasks["delete_emr_serverless_application"].upstream_task_ids
    watcher = tasks["fail_run_if_any_task_failed"]
    assert watcher.trigger_rule == "one_failed"
    assert watcher.upstream_task_ids == set(tasks) - {watcher.task_id}
    assert tasks["create_emr_serverless_application"].upstream_task_ids >= {
        "upload_dataset",
        "upload_job_package",
        "stage_job_environment",
    }
    # The shared steps are the cluster DAG's own tasks.
    cluster = dagbag.dags["fruits_emr_pipeline"].task_dict
    # (the cluster DAG's build_report waits for its teardown to record the cluster's end)
    for shared in ("validate_dataset", "upload_dataset", "upload_job_package"):
        assert tasks[shared].python_callable is cluster[shared].python_callable
    assert {"executors", "executor_vcpu", "executor_memory_gb", "architecture"} <= set(dag.params)
