"""status and cleanup with EMR Serverless applications: only this project's, by tag."""

from __future__ import annotations

import json

import boto3
import pytest

from include.config import PROJECT_TAG
from tests.application_fakes import application_state, create_application, start_job_run
from tests.include.infra.conftest import BUCKET, REGION

RUN = {"Project": PROJECT_TAG, "dag_id": "fruits_emr_serverless_pipeline", "run_id": "manual__1"}


@pytest.fixture
def serverless(aws):
    return boto3.client("emr-serverless", region_name=REGION)


def test_status_says_so_when_there_are_no_applications(aws, cli):
    result = cli("status")
    assert result.code == 0, result.err
    assert f"no EMR Serverless applications tagged Project={PROJECT_TAG} in {REGION}" in result.out
    assert json.loads(cli("status", "--json").out)["serverless_applications"] == []


def test_status_lists_project_applications_and_their_running_job_runs(aws, cli, serverless):
    ours = create_application(serverless, name="fruits-run-1", tags=RUN, age_hours=2)
    idle = create_application(
        serverless, name="fruits-idle", tags=RUN, age_hours=5, state="STOPPED"
    )
    theirs = create_application(
        serverless, name="fruits-run-1", tags={"Project": "someone-else"}, age_hours=2
    )
    running = start_job_run(serverless, ours, state="RUNNING", age_hours=0.5)
    done = start_job_run(serverless, ours, state="SUCCESS")

    report = json.loads(cli("status", "--json").out)["serverless_applications"]
    assert [a["application_id"] for a in report] == [idle, ours]  # oldest first
    app = report[1]
    assert (app["name"], app["state"], app["architecture"]) == ("fruits-run-1", "STARTED", "X86_64")
    assert app["age_hours"] == pytest.approx(2.0, abs=0.01)
    assert app["created_by"] == "fruits_emr_serverless_pipeline/manual__1"
    assert [(r["job_run_id"], r["state"]) for r in app["job_runs"]] == [(running, "RUNNING")]
    assert app["job_runs"][0]["age_hours"] == pytest.approx(0.5, abs=0.01)
    assert report[0]["job_runs"] == []

    table = cli("status")
    assert table.code == 0, table.err  # applications never change the exit code
    assert ours in table.out
    assert idle in table.out
    assert theirs not in table.out
    assert f"job run {running}" in table.out
    assert done not in table.out
    assert "fruits_emr_serverless_pipeline/manual__1" in table.out
    assert "no job run in progress" in table.out  # the idle one
    assert "no active clusters" in table.out


def test_cleanup_stops_and_deletes_only_project_applications(aws_iam, cli, serverless):
    assert cli("create-bucket", "--bucket", BUCKET).code == 0
    ours = create_application(serverless, name="a", tags=RUN, age_hours=1)
    stopped = create_application(serverless, name="b", tags=RUN, age_hours=1, state="STOPPED")
    theirs = create_application(serverless, name="a", tags={"Project": "x"}, age_hours=1)
    plan = cli("cleanup", "--bucket", BUCKET)
    assert plan.code == 2
    assert f"stop and delete EMR Serverless application {ours} (a)" in plan.out
    assert theirs not in plan.out
    assert application_state(serverless, ours) == "STARTED"

    result = cli("cleanup", "--bucket", BUCKET, "--keep-roles", "--yes-i-am-sure")
    assert result.code == 0, result.err
    assert application_state(serverless, ours) == "TERMINATED"
    assert application_state(serverless, stopped) == "TERMINATED"
    assert application_state(serverless, theirs) == "STARTED"


def test_cleanup_refuses_while_a_job_run_is_in_progress(aws, cli, serverless):
    app = create_application(serverless, name="a", tags=RUN, age_hours=1)
    run = start_job_run(serverless, app, state="RUNNING")
    result = cli("cleanup", "--bucket", BUCKET, "--keep-roles", "--yes-i-am-sure")
    assert result.code == 2
    assert f"{app} ({run} RUNNING)" in result.err
    assert application_state(serverless, app) == "STARTED"
