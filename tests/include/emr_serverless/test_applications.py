"""Finding and sweeping this project's EMR Serverless applications (moto, in-process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from include.config import PROJECT_TAG
from include.emr_serverless.applications import (
    SweepError,
    active_job_runs,
    find_applications,
    run_label,
    sweep_applications,
)
from tests.application_fakes import application_state, backend, create_application, start_job_run

REGION = "eu-west-1"
OURS = {"Project": PROJECT_TAG, "dag_id": "fruits_emr_serverless_pipeline", "run_id": "r1"}


@pytest.fixture
def serverless():
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("emr-serverless", region_name=REGION)


def _unknown_run(dag_id: str, run_id: str) -> str:
    raise RuntimeError(f"404: DagRun {dag_id}/{run_id} not found")


def _sweep(client, *, ttl_hours: float = 6, dry_run: bool = False, runs=_unknown_run, log=None):
    waited: list[str] = []
    swept = sweep_applications(
        client,
        project_tag=PROJECT_TAG,
        idle_since_before=datetime.now(UTC) - timedelta(hours=ttl_hours),
        get_dagrun_state=runs,
        wait_stopped=waited.append,
        dry_run=dry_run,
        log=log if log is not None else (lambda _: None),
    )
    return swept, waited


def test_find_applications_keys_on_the_project_tag_and_age(serverless):
    old = create_application(serverless, name="a", tags=OURS, age_hours=10)
    young = create_application(serverless, name="b", tags=OURS, age_hours=1)
    # Same name as ours, other project: the name means nothing.
    create_application(serverless, name="a", tags={"Project": "someone-else"}, age_hours=10)
    gone = create_application(serverless, name="c", tags=OURS, age_hours=10, state="TERMINATED")
    ours = find_applications(serverless, tags={"Project": PROJECT_TAG})
    assert [a["applicationId"] for a in ours] == [old, young]
    cutoff = datetime.now(UTC) - timedelta(hours=6)
    stale = find_applications(serverless, tags={"Project": PROJECT_TAG}, idle_since_before=cutoff)
    assert [a["applicationId"] for a in stale] == [old]
    assert gone not in [a["applicationId"] for a in ours]
    assert run_label(stale[0]) == "fruits_emr_serverless_pipeline/r1"
    assert run_label({"tags": {"Project": PROJECT_TAG}}) == "-"


def test_a_recently_updated_application_is_not_stale(serverless):
    app_id = create_application(serverless, name="a", tags=OURS, age_hours=10)
    backend(REGION).applications[app_id].updated_at = datetime.now(UTC).replace(tzinfo=None)
    assert _sweep(serverless)[0] == []
    assert application_state(serverless, app_id) == "STARTED"


def test_sweep_stops_then_deletes_started_and_deletes_stopped(serverless):
    started = create_application(serverless, name="a", tags=OURS, age_hours=10)
    stopped = create_application(serverless, name="b", tags=OURS, age_hours=10, state="STOPPED")
    swept, waited = _sweep(serverless)
    assert {s["id"]: s["action"] for s in swept} == {
        started: "stopped and deleted",
        stopped: "deleted",
    }
    assert waited == [started]  # only the started one had to be waited for
    assert application_state(serverless, started) == "TERMINATED"
    assert application_state(serverless, stopped) == "TERMINATED"


@pytest.mark.parametrize("state", ["RUNNING", "PENDING", "SUBMITTED", "SCHEDULED", "CANCELLING"])
def test_an_application_with_a_job_run_not_over_is_left_alone(serverless, state):
    app_id = create_application(serverless, name="a", tags=OURS, age_hours=30)
    run_id = start_job_run(serverless, app_id, state=state)
    start_job_run(serverless, app_id, state="SUCCESS")
    assert [r["id"] for r in active_job_runs(serverless, app_id)] == [run_id]
    logs: list[str] = []
    assert _sweep(serverless, log=logs.append)[0] == []
    assert application_state(serverless, app_id) == "STARTED"
    assert any(f"{run_id} {state}" in line for line in logs)


def test_an_application_whose_dag_run_is_running_is_left_alone(serverless):
    app_id = create_application(serverless, name="a", tags=OURS, age_hours=30)
    asked: list[tuple[str, str]] = []

    def running(dag_id: str, run_id: str) -> str:
        asked.append((dag_id, run_id))
        return "DagRunState.RUNNING"

    assert _sweep(serverless, runs=running)[0] == []
    assert asked == [("fruits_emr_serverless_pipeline", "r1")]
    assert application_state(serverless, app_id) == "STARTED"
    # Once the run is over (failed), the application is an orphan.
    swept, _ = _sweep(serverless, runs=lambda *_: "failed")
    assert [s["id"] for s in swept] == [app_id]


def test_dry_run_changes_nothing(serverless):
    started = create_application(serverless, name="a", tags=OURS, age_hours=10)
    stopped = create_application(serverless, name="b", tags=OURS, age_hours=10, state="STOPPED")
    swept, waited = _sweep(serverless, dry_run=True)
    assert {s["id"]: s["action"] for s in swept} == {
        started: "would stop and delete",
        stopped: "would delete",
    }
    assert waited == []
    assert application_state(serverless, started) == "STARTED"
    assert application_state(serverless, stopped) == "STOPPED"


def test_a_creating_application_is_left_for_the_next_sweep(serverless):
    app_id = create_application(serverless, name="a", tags=OURS, age_hours=10, state="CREATING")
    assert _sweep(serverless)[0] == []
    assert application_state(serverless, app_id) == "CREATING"


def test_one_failed_delete_fails_the_sweep_after_the_others_are_done(serverless, monkeypatch):
    from moto.emrserverless.exceptions import ValidationException
    from moto.emrserverless.models import EMRServerlessBackend

    stuck = create_application(serverless, name="stuck", tags=OURS, age_hours=10)
    fine = create_application(serverless, name="fine", tags=OURS, age_hours=10)
    original = EMRServerlessBackend.delete_application

    def delete(self, application_id):
        if application_id == stuck:
            raise ValidationException("application is locked for maintenance")
        return original(self, application_id)

    monkeypatch.setattr(EMRServerlessBackend, "delete_application", delete)
    with pytest.raises(SweepError) as excinfo:
        _sweep(serverless)
    message = str(excinfo.value)
    assert f"1 of 2 stale application(s) tagged Project={PROJECT_TAG}" in message
    assert f"{stuck} (stuck, STARTED): DeleteApplication: ValidationException" in message
    assert "locked for maintenance" in message
    assert application_state(serverless, fine) == "TERMINATED"
    assert application_state(serverless, stuck) == "STOPPED"  # stopped, not deleted
