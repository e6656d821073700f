"""The EMR DAG end to end, offline: ``dag.test()`` against moto (in-process and server mode).

moto creates clusters and steps but never moves a step past RUNNING. ``FakeEmrJob``
plays EMR's part from a background thread: when a step appears it reads the step's
spark-submit arguments, then (by scenario) writes the job's outputs where ``--output`` /
``--run-id`` say and marks the step COMPLETED, or writes a gzipped stderr to the cluster's
log URI and marks it FAILED, or leaves it RUNNING (for the sensor timeout).

Every run asserts through the services (S3 objects, moto cluster states) and the task
instance states, not through mocks. Retry delays are zeroed so retries happen at once.
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from tests.dag_wiring import XComOf, assert_task_calls
from tests.emr_fakes import moto_clusters, prepare_account, step_arg, write_job_outputs

REGION = "eu-west-1"
BUCKET = "fruits-test-bucket"
PREFIX = "fruits"
DAG_ID = "fruits_emr_pipeline"
ACTIVE = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
FAST = {
    "poke_interval_seconds": 1,
    "step_timeout_seconds": 60,
    "weights": "none",
    "pack_dataset": False,
}
STDERR_TEXT = (
    "Traceback (most recent call last):\n"
    '  File "entrypoint.py", line 4, in <module>\n'
    "ValueError: zero valid images under s3://fruits-test-bucket/fruits/datasets/x\n"
    "aws_secret_access_key=abcdefSECRET123\n"
)


class FakeEmrJob:
    """Moves moto's RUNNING steps to an end state the way EMR would (see module docstring).

    scenario: "complete" | "fail" | "hang" | "no_success_marker".
    """

    def __init__(self, scenario: str, *, endpoint_url: str | None = None) -> None:
        self.scenario = scenario
        self.endpoint_url = endpoint_url
        self.seen_steps: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FakeEmrJob:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=self.endpoint_url)
        while not self._stop.is_set():
            try:
                for cluster in moto_clusters():
                    for step in list(cluster.steps):
                        if step.state == "RUNNING" and self.scenario != "hang":
                            self._finish(s3, cluster, step)
            except Exception as exc:  # surfaced by the test, not lost in the thread
                self.errors.append(exc)
                return
            time.sleep(0.05)

    def _finish(self, s3: Any, cluster: Any, step: Any) -> None:
        args = list(step.args)
        self.seen_steps.append({"cluster": cluster.id, "step": step.id, "args": args})
        if self.scenario == "fail":
            bucket, _, base = cluster.log_uri.removeprefix("s3://").partition("/")
            key = f"{base.rstrip('/')}/{cluster.id}/steps/{step.id}/stderr.gz"
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(STDERR_TEXT.encode()))
            step.state = "FAILED"
            return
        write_job_outputs(
            s3,
            step_arg(args, "--output"),
            step_arg(args, "--run-id"),
            success=self.scenario != "no_success_marker",
        )
        step.state = "COMPLETED"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def aws_env(monkeypatch, tmp_path) -> Path:
    """Configuration for one run: test bucket, results under tmp_path; returns results dir."""
    results = tmp_path / "results"
    monkeypatch.setenv("FRUITS_BUCKET", BUCKET)
    monkeypatch.setenv("FRUITS_PREFIX", PREFIX)
    monkeypatch.setenv("FRUITS_REGION", REGION)
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(results))
    monkeypatch.delenv("FRUITS_EMR_LOG_URI", raising=False)
    return results


@pytest.fixture
def moto_aws(aws_env) -> Iterator[None]:
    """In-process moto with the test bucket created (the DAG never creates buckets)."""
    from moto import mock_aws

    with mock_aws():
        prepare_account(BUCKET, REGION)
        yield


@pytest.fixture
def job_source(tmp_path_factory, monkeypatch) -> Path:
    """A minimal stand-in for the spark_jobs package (these tests are about orchestration;
    tests/include/test_job_package.py packages the real one)."""
    root = tmp_path_factory.mktemp("repo")
    package = root / "spark_jobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "entrypoint.py").write_text("raise SystemExit(0)\n")
    (package / "bootstrap.sh").write_text("#!/bin/bash\n")
    (package / "requirements.txt").write_text("numpy\n")
    for runtime, package_name in (("litert", "ai-edge-litert"), ("keras", "tensorflow-cpu")):
        (package / f"requirements-{runtime}.txt").write_text(f"{package_name}\n")
    monkeypatch.setattr("include.staging.job_package.REPO_ROOT", root)

    def fake_download(requirements, constraints, dest, arch):  # tests never reach PyPI
        (dest / f"fake-1.0-py3-none-any-{arch}.whl").write_bytes(b"wheel")

    monkeypatch.setattr("include.staging.wheelhouse.pip_download", fake_download)
    return package


@pytest.fixture
def emr_dag(dagbag, airflow_db, monkeypatch, job_source):
    """The EMR DAG with retry delays zeroed (retries still happen, at once)."""
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag


def run_dag(dag: Any, **conf: Any) -> tuple[str, dict[str, str]]:
    """``dag.test()`` with Params ``conf``; returns (run state, {task_id: state}).

    Every Param is passed (defaults + ``conf``): in-process runs share the DAG object, and
    values of an earlier run must not leak into the next one.
    """
    from include.params.cluster import emr_params

    dag_run = dag.test(run_conf={**{n: p.value for n, p in emr_params().items()}, **conf})
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return str(dag_run.state), states


def clusters_by_state(endpoint_url: str | None = None) -> dict[str, str]:
    emr = boto3.client("emr", region_name=REGION, endpoint_url=endpoint_url)
    return {c["Id"]: c["Status"]["State"] for c in emr.list_clusters()["Clusters"]}


def s3_keys(endpoint_url: str | None = None) -> list[str]:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


# ---------------------------------------------------------------------------- happy path


@pytest.mark.slow
@pytest.mark.parametrize("pack", [True, False], ids=["packed", "images"])
def test_happy_path_uploads_creates_downloads_and_terminates(
    pack, emr_dag, moto_aws, aws_env, sample_dataset
):
    with FakeEmrJob("complete") as job:
        conf = {**FAST, "pack_dataset": pack}
        state, tasks = run_dag(emr_dag, dataset_dir=str(sample_dataset), **conf)
    assert not job.errors
    assert state == "success", tasks
    assert tasks["fail_run_if_any_task_failed"] == "skipped"
    assert all(s == "success" for t, s in tasks.items() if t != "fail_run_if_any_task_failed")

    keys = s3_keys()
    dataset_keys = [k for k in keys if k.startswith(f"{PREFIX}/datasets/")]
    assert dataset_keys
    code = {k.rsplit("/", 1)[-1] for k in keys if "/code/" in k}
    assert code == {
        "entrypoint.py",
        "spark_jobs.zip",
        "bootstrap.sh",
        "requirements.txt",
        "model.zip",  # the default runtime's converted model
    }

    (cluster_id, cluster_state), *others = clusters_by_state().items()
    assert not others
    assert cluster_state == "TERMINATED"
    # The nodes install from the staged wheelhouse (the test's downloader: fake wheels).
    wheel_keys = [k for k in keys if f"{PREFIX}/wheelhouse/" in k]
    assert {k.rsplit("/", 2)[-2] for k in wheel_keys if k.endswith(".whl")} == {
        "x86_64",
        "aarch64",
    }
    manifest_key = next(k for k in wheel_keys if k.endswith("/manifest.json"))
    (bootstrap,) = boto3.client("emr", region_name=REGION).list_bootstrap_actions(
        ClusterId=cluster_id
    )["BootstrapActions"]
    assert bootstrap["Args"][1] == f"s3://{BUCKET}/{manifest_key.rsplit('/', 1)[0]}"
    (step,) = job.seen_steps
    args = step["args"]
    assert args[0] == "spark-submit"
    entry = next(a for a in args if a.endswith("/entrypoint.py"))
    assert entry.removeprefix(f"s3://{BUCKET}/") in keys  # the step runs the uploaded script
    layout = "packed" if pack else "images"
    assert (
        step_arg(args, "--input")
        == f"s3://{BUCKET}/{PREFIX}/datasets/{sample_dataset.name}/{layout}/"
    )
    assert all(
        k.startswith(f"{PREFIX}/datasets/{sample_dataset.name}/{layout}/") for k in dataset_keys
    )
    if pack:
        assert all(k.endswith(".parquet") for k in dataset_keys)
    else:
        assert len(dataset_keys) == sum(1 for p in sample_dataset.rglob("*") if p.is_file())

    (run_dir,) = [p for p in (aws_env / DAG_ID).iterdir() if p.is_dir()]
    assert run_dir.name == step_arg(args, "--run-id")
    assert json.loads((run_dir / "metrics.json").read_text())["pca"]["k"] == 2
    assert (run_dir / "pca" / "part-00000.parquet").is_file()
    assert not (run_dir / "features").exists()  # optional, off by default
    cluster = json.loads((run_dir / "cluster.json").read_text())
    assert cluster["Cluster"]["Id"] == cluster_id
    assert {g["InstanceGroupType"] for g in cluster["InstanceGroups"]} == {"MASTER", "CORE"}
    assert (run_dir / "report" / "report.html").is_file()


# ---------------------------------------------------------------------------- fault matrix


def spy_failure_reports(monkeypatch) -> list[str]:
    """Record what the step sensor writes to the task log about a failed step."""
    import include.emr.operators

    reports: list[str] = []
    original = include.emr.operators.describe_step_failure

    def spy(*args, **kwargs):
        reports.append(original(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(include.emr.operators, "describe_step_failure", spy)
    return reports


def _raise_after_create(monkeypatch):
    """The cluster is created, then the create task fails before its id reaches XCom."""
    from airflow.providers.amazon.aws.hooks.emr import EmrHook

    original = EmrHook.create_job_flow

    def create_then_fail(self, overrides):
        original(self, overrides)
        raise RuntimeError("injected: create failed after EMR accepted the request")

    monkeypatch.setattr(EmrHook, "create_job_flow", create_then_fail)


# One whole-DAG run per path a failure takes through the DAG: before any cluster or upload,
# at the step (its report reaches the log), after the step. Each other fault's own task is
# tested on its own: validation (tests/include/datasets/test_local.py; test_bad_params_...
# below takes the same path), upload (tests/include/datasets/test_upload.py), create, add
# step and sensor timeout (tests/include/emr/test_operators.py, with the terminate task they
# lead to); the DAG's wiring (terminate ALL_DONE, the watcher ONE_FAILED): test_pipeline_shape.
FAULTS = {
    # name: (how to inject, EMR behaviour, extra Params, the task that must fail)
    "preflight": (None, "complete", {"_bucket": "no-such-bucket"}, "preflight"),
    "step_failed": (None, "fail", {}, "wait_for_feature_step"),
    "download": (None, "no_success_marker", {}, "download_results"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix_terminates_cluster_and_fails_run(
    fault, emr_dag, moto_aws, sample_dataset, monkeypatch
):
    inject, scenario, extra, failing_task = FAULTS[fault]
    extra = dict(extra)  # FAULTS stays as it is for the next run
    failure_reports = spy_failure_reports(monkeypatch)
    if inject:
        inject(monkeypatch)
    if "_bucket" in extra:
        monkeypatch.setenv("FRUITS_BUCKET", extra.pop("_bucket"))
    conf = {"dataset_dir": str(sample_dataset), **FAST, **extra}
    with FakeEmrJob(scenario) as job:
        state, tasks = run_dag(emr_dag, **conf)
    assert not job.errors
    summary = ", ".join(f"{t}={s}" for t, s in sorted(tasks.items()))
    print(f"\nFAULT {fault}: run={state} clusters={clusters_by_state()} tasks: {summary}")

    assert state == "failed", summary
    assert tasks[failing_task] == "failed", summary
    assert tasks["terminate_emr_cluster"] == "success", summary
    assert tasks["fail_run_if_any_task_failed"] == "failed", summary
    clusters = clusters_by_state()
    assert not [c for c, s in clusters.items() if s in ACTIVE], clusters
    created_cluster = fault != "preflight"
    assert bool(clusters) == created_cluster, clusters
    if fault == "step_failed":
        (report,) = failure_reports
        assert "is FAILED" in report
        assert "ValueError: zero valid images" in report  # the stderr tail reaches the log
        assert "abcdefSECRET123" not in report  # secrets are masked
    if fault == "preflight":  # the one-line reason and the fix reach the failed task
        assert not any(tasks[t] == "success" for t in ("upload_dataset", "upload_job_package"))


@pytest.mark.slow
def test_create_retry_reuses_the_run_cluster_instead_of_paying_for_another(
    emr_dag, moto_aws, sample_dataset, monkeypatch
):
    """The first attempt fails after EMR accepted the cluster (its id never reached XCom):
    the retry finds the run's cluster by tag and reuses it, the run succeeds, one cluster."""
    _raise_after_create(monkeypatch)
    with FakeEmrJob("complete"):
        state, tasks = run_dag(emr_dag, dataset_dir=str(sample_dataset), **FAST)
    clusters = clusters_by_state()
    assert state == "success", tasks
    assert tasks["create_emr_cluster"] == "success"
    assert len(clusters) == 1, clusters
    assert set(clusters.values()) == {"TERMINATED"}


@pytest.mark.slow
def test_add_step_retry_does_not_add_the_step_twice(emr_dag, moto_aws, sample_dataset, monkeypatch):
    """The first attempt's step reached EMR but the task failed: the retry reuses it."""
    from airflow.providers.amazon.aws.hooks.emr import EmrHook

    original = EmrHook.add_job_flow_steps
    calls = []

    def add_then_fail_once(self, **kwargs):
        step_ids = original(self, **kwargs)
        calls.append(step_ids)
        if len(calls) == 1:
            raise RuntimeError("injected: add step failed after EMR accepted the step")
        return step_ids

    monkeypatch.setattr(EmrHook, "add_job_flow_steps", add_then_fail_once)
    with FakeEmrJob("complete"):
        state, tasks = run_dag(emr_dag, dataset_dir=str(sample_dataset), **FAST)
    assert state == "success", tasks
    assert len(calls) == 1, "the retry added the step again"
    (cluster,) = moto_clusters()
    assert len(cluster.steps) == 1
    assert clusters_by_state() == {cluster.id: "TERMINATED"}


# ---------------------------------------------------------------------------- bad Params


# The task bodies are plain functions of include/ (tests/include/emr/test_tasks.py etc.):
# here, only that each task calls its function with what the task receives.
WIRED = {
    # task id: (the function's module, its name, the task's arguments, the call expected)
    "validate_params": (
        "include.emr.tasks",
        "validate_params",
        {"params": {"mode": "mini"}, "dag_run": SimpleNamespace(dag_id=DAG_ID, run_id="r1")},
        (({"mode": "mini"},), {"dag_id": DAG_ID, "run_id": "r1"}),
    ),
    "preflight": (
        "dags.fruits_emr_pipeline",
        "preflight_cluster",
        {"plan": {"p": 1}},
        (({"p": 1},), {}),
    ),
    "skip_if_unchanged": (
        "dags.fruits_emr_pipeline",
        "skip_unchanged_run",
        {"plan": {"p": 1}, "params": {"force": True}, "run_id": "r1"},
        (("emr", {"force": True}), {"plan": {"p": 1}, "run_id": "r1"}),
    ),
    "check_budget": (
        "dags.fruits_emr_pipeline",
        "check_run_budget",
        {"dataset": {"images": 3}, "params": {"force": True}},
        (("emr", {"images": 3}, {"force": True}), {}),
    ),
    "plan_cluster_steps": (
        "include.emr.tasks",
        "plan_cluster_steps",
        {"plan": {"p": 1}, "dataset": {"d": 2}},
        (({"p": 1}, {"d": 2}), {}),
    ),
    "stage_wheelhouse": (
        "include.emr.tasks",
        "stage_wheelhouse",
        {"plan": {"p": 1}},
        (({"p": 1},), {}),
    ),
    "download_results": (
        "include.emr.tasks",
        "download_results",
        {"plan": {"p": 1}, "cluster_id": "j-1"},
        (({"p": 1}, "j-1"), {}),
    ),
    "build_report": (
        "include.emr.tasks",
        "build_report",
        {"plan": {"p": 1}, "run_dir": "/r", "estimate": {"e": 3}, "cluster_id": "j-1"},
        (({"p": 1}, "/r", {"e": 3}, "j-1"), {}),
    ),
}


def test_the_report_waits_for_the_teardown(dagbag):
    """The report records the cluster's final state: it runs after terminate_emr_cluster."""
    tasks = dagbag.dags[DAG_ID].task_dict
    assert "terminate_emr_cluster" in tasks["build_report"].upstream_task_ids
    assert "download_results" in tasks["build_report"].upstream_task_ids


@pytest.mark.parametrize("task_id", list(WIRED))
def test_each_task_calls_its_include_function(task_id, dagbag, monkeypatch):
    assert_task_calls(dagbag.dags[DAG_ID].task_dict[task_id], WIRED[task_id], monkeypatch)


def test_the_watcher_fails_the_run_naming_the_teardown(dagbag):
    from airflow.sdk.exceptions import AirflowFailException

    watcher = dagbag.dags[DAG_ID].task_dict["fail_run_if_any_task_failed"]
    created = XComOf("j-1ABC")
    with pytest.raises(AirflowFailException, match="cluster j-1ABC is removed by terminate_emr"):
        watcher.python_callable(ti=created)
    assert created.asked == ["create_emr_cluster"]
    # failed before any cluster: nothing claimed terminated
    with pytest.raises(AirflowFailException, match="no cluster id was recorded") as failed:
        watcher.python_callable(ti=XComOf(None))
    assert "terminated" not in str(failed.value)


@pytest.mark.slow  # one bad Param (each one's message: test_validate_params_rejects_...)
def test_bad_params_fail_the_run_before_any_aws_call(emr_dag, moto_aws, sample_dataset):
    from tests.include.emr.test_tasks import BAD_PARAMS

    conf, _, _ = BAD_PARAMS["pca both empty"]
    state, tasks = run_dag(emr_dag, dataset_dir=str(sample_dataset), **{**FAST, **conf})
    assert state == "failed"
    assert tasks["validate_params"] == "failed"
    assert {tasks[t] for t in ("upload_dataset", "create_emr_cluster")} == {"upstream_failed"}
    assert tasks["terminate_emr_cluster"] == "success"  # ran, found nothing to terminate
    assert clusters_by_state() == {}
    assert s3_keys() == []


SCHEMA_BAD = {
    "mode": "huge",
    "instance_type": "p4d.24xlarge",
    "core_nodes": 0,
    "release_label": "emr-6.15.0",
    "idle_timeout_minutes": 0,
    "pca_variance": 1.5,
    "pca_k": 5000,
    "max_images": -1,
    "spot_core_nodes": "yes",
}


@pytest.mark.parametrize(("name", "value"), list(SCHEMA_BAD.items()))
def test_trigger_form_rejects_bad_values(name, value, dagbag):
    """Airflow validates Params against their schema when a run is created."""
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[DAG_ID].params)
    params.validate()  # the defaults are valid
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {name}"):
        params[name] = value


# ---------------------------------------------------------------------------- deferrable


@pytest.mark.slow
@pytest.mark.integration
def test_deferrable_run_against_moto_server(emr_dag, aws_env, sample_dataset, monkeypatch):
    """Deferrable create + sensor: the triggers poll a moto server on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

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
        with FakeEmrJob("complete", endpoint_url=endpoint) as job:
            state, tasks = run_dag(
                emr_dag, dataset_dir=str(sample_dataset), deferrable=True, **FAST
            )
        assert not job.errors
        assert state == "success", tasks
        assert len(job.seen_steps) == 1
        assert set(clusters_by_state(endpoint).values()) == {"TERMINATED"}
        assert any(k.endswith("/code/entrypoint.py") for k in s3_keys(endpoint))
    finally:
        server.stop()


# ---------------------------------------------------------------------------- structure


def test_pipeline_shape(dagbag):
    from airflow.providers.amazon.aws.operators.emr import (
        EmrAddStepsOperator,
        EmrCreateJobFlowOperator,
        EmrTerminateJobFlowOperator,
    )
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

    dag = dagbag.dags[DAG_ID]
    tasks = dag.task_dict
    assert dag.max_active_runs == 1
    assert isinstance(tasks["create_emr_cluster"], EmrCreateJobFlowOperator)
    assert isinstance(tasks["add_feature_step"], EmrAddStepsOperator)
    assert isinstance(tasks["wait_for_feature_step"], EmrStepSensor)
    assert isinstance(tasks["terminate_emr_cluster"], EmrTerminateJobFlowOperator)
    assert tasks["terminate_emr_cluster"].trigger_rule == "all_done"
    assert {"create_emr_cluster", "wait_for_feature_step"} <= tasks[
        "terminate_emr_cluster"
    ].upstream_task_ids
    watcher = tasks["fail_run_if_any_task_failed"]
    assert watcher.trigger_rule == "one_failed"
    assert watcher.upstream_task_ids == set(tasks) - {watcher.task_id}
    assert tasks["validate_params"].downstream_task_ids >= {"preflight"}
    assert tasks["preflight"].downstream_task_ids >= {"validate_dataset"}
    assert tasks["create_emr_cluster"].upstream_task_ids >= {
        "upload_dataset",
        "upload_job_package",
        "stage_wheelhouse",
    }
    assert tasks["download_results"].upstream_task_ids >= {"wait_for_feature_step"}
    assert {"mode", "instance_type", "core_nodes", "spot_core_nodes", "release_label"} <= set(
        dag.params
    )
