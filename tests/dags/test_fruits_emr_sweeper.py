"""The orphan sweeper terminates only this project's clusters older than the TTL (moto)."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from include.config import PROJECT_TAG
from tests.dag_wiring import assert_task_calls
from tests.emr_fakes import age_cluster, start_cluster

REGION = "eu-west-1"
DAG_ID = "fruits_emr_sweeper"


def _create_cluster(emr, name: str, tags: dict[str, str], *, age_hours: float) -> str:
    cluster_id = start_cluster(emr, tags=tags, name=name)
    age_cluster(cluster_id, age_hours)  # moto stamps "now"; EMR time would have passed
    return cluster_id


@pytest.fixture
def clusters(monkeypatch):
    """Five clusters: only "old_ours" is an orphan (tagged, live, older than 6 h)."""
    from moto import mock_aws

    monkeypatch.setenv("FRUITS_REGION", REGION)
    monkeypatch.setenv("FRUITS_CLUSTER_TTL_HOURS", "6")
    with mock_aws():
        emr = boto3.client("emr", region_name=REGION)
        ours = {"Project": PROJECT_TAG, "dag_id": "fruits_emr_pipeline", "run_id": "r1"}
        ids = {
            "old_ours": _create_cluster(emr, "old ours", ours, age_hours=10),
            "new_ours": _create_cluster(emr, "new ours", ours, age_hours=1),
            "old_other_project": _create_cluster(
                emr, "other", {"Project": "someone-else"}, age_hours=48
            ),
            "old_untagged": _create_cluster(emr, "untagged", {}, age_hours=48),
            "old_ours_terminated": _create_cluster(emr, "done", ours, age_hours=30),
        }
        emr.terminate_job_flows(JobFlowIds=[ids["old_ours_terminated"]])
        yield emr, ids


@pytest.fixture
def sweeper(dagbag, airflow_db, monkeypatch):
    """The sweeper DAG with retry delays zeroed (a failure shows at once, not in 5 min)."""
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag


def _states(emr, ids: dict[str, str]) -> dict[str, str]:
    return {
        name: emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]
        for name, cid in ids.items()
    }


def _ti_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.slow
def test_sweeper_dry_run_terminates_nothing(sweeper, clusters):
    emr, ids = clusters
    before = _states(emr, ids)
    dag_run = sweeper.test(run_conf={"dry_run": True, "ttl_hours": 0.5})
    assert str(dag_run.state) == "success", _ti_states(dag_run)
    assert _states(emr, ids) == before
    assert before["old_ours"] == "WAITING"  # it would have been a candidate


@pytest.mark.slow
def test_sweeper_ttl_param_overrides_config(sweeper, clusters):
    emr, ids = clusters
    dag_run = sweeper.test(run_conf={"dry_run": False, "ttl_hours": 0.5})
    assert str(dag_run.state) == "success", _ti_states(dag_run)
    states = _states(emr, ids)
    assert states["old_ours"] == "TERMINATED"
    assert states["new_ours"] == "TERMINATED"  # 1 h old > 0.5 h TTL
    assert states["old_other_project"] == "WAITING"


@pytest.mark.slow
def test_sweeper_terminates_only_old_tagged_clusters_whose_run_is_over(sweeper, clusters):
    """Only "old_ours" ends; a cluster far past the TTL is left alone while Airflow says its
    run is running (one run of the DAG for both).

    The running run is the sweeper's own test run (its run id is known in advance from
    the fixed run_after); the "old_ours" cluster's run r1 is unknown to Airflow: an orphan.
    """
    from datetime import UTC, datetime

    emr, ids = clusters
    run_after = datetime.now(UTC).replace(microsecond=0)
    running = _create_cluster(
        emr,
        "long healthy run",
        {"Project": PROJECT_TAG, "dag_id": DAG_ID, "run_id": f"manual__{run_after.isoformat()}"},
        age_hours=30,
    )
    dag_run = sweeper.test(
        run_after=run_after,
        logical_date=run_after,
        run_conf={"dry_run": False, "ttl_hours": None},
    )
    assert str(dag_run.state) == "success", _ti_states(dag_run)
    assert dag_run.run_id == f"manual__{run_after.isoformat()}"
    assert _states(emr, {"running": running})["running"] == "WAITING"
    states = _states(emr, ids)
    assert states["old_ours"] == "TERMINATED"
    assert states["new_ours"] == "WAITING"
    assert states["old_other_project"] == "WAITING"
    assert states["old_untagged"] == "WAITING"


def test_default_ttl_outlasts_the_longest_allowed_run():
    from include.config import CREATE_WAIT_SECONDS, PipelineConfig
    from include.params.defaults import STEP_TIMEOUT_BY_MODE

    longest = CREATE_WAIT_SECONDS + max(STEP_TIMEOUT_BY_MODE.values())
    assert PipelineConfig().cluster_ttl_hours * 3600 > longest
    assert PipelineConfig().cluster_ttl_hours == 8


# --- EMR Serverless applications (task sweep_serverless_applications) ------------------------

SERVERLESS_TASK = "sweep_serverless_applications"


@pytest.fixture
def applications(monkeypatch):
    """This project's and others' applications; only "old_idle" and "old_stopped" are stale."""
    from moto import mock_aws

    from tests.application_fakes import create_application, start_job_run

    monkeypatch.setenv("FRUITS_REGION", REGION)
    monkeypatch.setenv("FRUITS_CLUSTER_TTL_HOURS", "6")
    with mock_aws():
        client = boto3.client("emr-serverless", region_name=REGION)
        ours = {"Project": PROJECT_TAG, "dag_id": "fruits_emr_serverless_pipeline", "run_id": "r1"}

        def app(name: str, tags: dict[str, str], age: float, state: str | None = None) -> str:
            return create_application(client, name=name, tags=tags, age_hours=age, state=state)

        ids = {
            "old_idle": app("old idle", ours, 10),
            "old_stopped": app("old stopped", ours, 10, "STOPPED"),
            "young": app("young", ours, 1),
            "foreign": app("old idle", {"Project": "someone-else"}, 48),
            "untagged": app("untagged", {}, 48),
            "busy": app("busy", ours, 30),
        }
        start_job_run(client, ids["busy"], state="RUNNING")
        yield client, ids


def _app_states(client, ids: dict[str, str]) -> dict[str, str]:
    from tests.application_fakes import application_state

    return {name: application_state(client, app_id) for name, app_id in ids.items()}


@pytest.mark.slow
def test_sweeper_removes_only_old_idle_project_applications(sweeper, applications):
    """Also: an old one whose DAG run (the sweeper's own test run) is still running stays."""
    from datetime import UTC, datetime

    from tests.application_fakes import create_application

    client, ids = applications
    run_after = datetime.now(UTC).replace(microsecond=0)
    ids["run_running"] = create_application(
        client,
        name="long healthy run",
        tags={
            "Project": PROJECT_TAG,
            "dag_id": DAG_ID,
            "run_id": f"manual__{run_after.isoformat()}",
        },
        age_hours=30,
    )
    dag_run = sweeper.test(
        run_after=run_after, logical_date=run_after, run_conf={"dry_run": False, "ttl_hours": None}
    )
    assert str(dag_run.state) == "success", _ti_states(dag_run)
    assert _app_states(client, ids) == {
        "old_idle": "TERMINATED",
        "old_stopped": "TERMINATED",
        "young": "STARTED",
        "foreign": "STARTED",
        "untagged": "STARTED",
        "busy": "STARTED",
        "run_running": "STARTED",
    }


@pytest.mark.slow
def test_sweeper_dry_run_leaves_applications_alone(sweeper, applications):
    client, ids = applications
    before = _app_states(client, ids)
    dag_run = sweeper.test(run_conf={"dry_run": True, "ttl_hours": 0.5})
    assert str(dag_run.state) == "success", _ti_states(dag_run)
    assert _app_states(client, ids) == before
    assert before["young"] == "STARTED"  # 1 h old > 0.5 h: it would have been a candidate


@pytest.mark.slow
def test_an_application_that_cannot_be_deleted_fails_the_run(sweeper, applications, monkeypatch):
    from moto.emrserverless.exceptions import ValidationException
    from moto.emrserverless.models import EMRServerlessBackend

    client, ids = applications
    original = EMRServerlessBackend.delete_application

    def delete(self, application_id):
        if application_id == ids["old_idle"]:
            raise ValidationException("locked")
        return original(self, application_id)

    monkeypatch.setattr(EMRServerlessBackend, "delete_application", delete)
    dag_run = sweeper.test(run_conf={"dry_run": False, "ttl_hours": None})
    states = _ti_states(dag_run)
    assert str(dag_run.state) == "failed", states
    assert states[SERVERLESS_TASK] == "failed"
    assert states["terminate_stale_clusters"] == "success"  # the cluster sweep is not hidden
    assert _app_states(client, ids)["old_stopped"] == "TERMINATED"  # the others were done
    assert _app_states(client, ids)["old_idle"] == "STOPPED"


def _state_lookup(dag_id: str, run_id: str) -> str:
    return "success"


# The task bodies are plain functions (tests/include/emr/test_sweep.py): here, only that each
# task calls its function with what the task receives.
WIRED = {
    "find_stale_clusters": (
        "include.emr.sweep",
        "find_stale_clusters",
        {"params": {"ttl_hours": 2}, "ti": type("TI", (), {"get_dagrun_state": _state_lookup})},
        (({"ttl_hours": 2}, _state_lookup), {}),
    ),
    "terminate_stale_clusters": (
        "include.emr.sweep",
        "terminate_stale_clusters",
        {"clusters": [{"id": "j-1"}], "params": {"dry_run": True}},
        (([{"id": "j-1"}], {"dry_run": True}), {}),
    ),
    "sweep_serverless_applications": (
        "include.emr_serverless.sweep",
        "sweep_serverless_applications",
        {"params": {"ttl_hours": 2}, "ti": type("TI", (), {"get_dagrun_state": _state_lookup})},
        (({"ttl_hours": 2}, _state_lookup), {}),
    ),
}


@pytest.mark.parametrize("task_id", list(WIRED))
def test_each_task_calls_its_include_function(task_id, dagbag, monkeypatch):
    assert_task_calls(dagbag.dags[DAG_ID].task_dict[task_id], WIRED[task_id], monkeypatch)
