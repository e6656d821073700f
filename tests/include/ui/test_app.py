"""The plugin's endpoints on Airflow's own security, with real DAG runs (dag.test()).

Runs of the local DAG: one that failed (no dataset), one with results (its Spark tasks
marked success, its results folder written here), one skipped as unchanged (the DAG's
last-success record names the run with results). Tokens are the SimpleAuthManager's JWTs:
a viewer may read every DAG, a user without a role none (403), no token is 401.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

DAG_ID = "fruits_local_pipeline"
PNG = b"\x89PNG\r\n\x1a\nfake-plot"


def _url(run_id: str, tail: str = "report", dag_id: str = DAG_ID) -> str:
    return f"/runs/{dag_id}/{quote(run_id, safe='')}/{tail}"


@pytest.fixture(scope="module")
def runs(airflow_db, sample_dataset, tmp_path_factory):
    """{"failed", "done", "skipped": run id}, the results root and the record."""
    from airflow.dag_processing.dagbag import DagBag

    from include.params.common import job_settings_from_params
    from include.params.run_paths import run_results_dir
    from include.reruns.fingerprint import build_success_record
    from include.reruns.history import fingerprint_run, write_local_record
    from tests.conftest import DAGS_FOLDER

    root = tmp_path_factory.mktemp("ui") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRUITS_RESULTS_DIR", str(root))
        mp.setenv("AIRFLOW_CONN_SPARK_LOCAL", '{"conn_type": "spark", "host": "local[*]"}')

        def dag():  # a fresh parse: dag.test() keeps a run's conf in the DAG's params
            return DagBag(str(DAGS_FOLDER / f"{DAG_ID}.py")).dags[DAG_ID]

        failed = dag().test(run_conf={"dataset_dir": str(root / "nope"), "weights": "none"})
        conf = {"dataset_dir": str(sample_dataset), "weights": "none", "pca_k": 2}
        done = dag().test(
            run_conf={**conf, "force": True},
            mark_success_pattern="prepare_spark_job|run_feature_job|check_results|build_report|publish_results",
        )
        folder = run_results_dir(root, DAG_ID, done.run_id)
        (folder / "report").mkdir(parents=True)
        metrics = {
            "counts": {"valid_images": 24, "featurized": 20, "reused": 4},
            "pca": {"k": 2, "variance_at_k": 0.5},
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "_SUCCESS").write_bytes(b"")
        (folder / "report" / "report.html").write_text("<html><body><h1>REPORT-OF-DONE</h1>")
        (folder / "report" / "pca_scatter.png").write_bytes(PNG)
        (folder.parent / "secret.txt").write_text("outside the run")
        # The record the next run compares with: the same fingerprint as the DAG computes.
        settings = job_settings_from_params({**dict(dag().params), **conf})
        _, fingerprint = fingerprint_run(
            settings, sample_dataset, environment={"platform": "local"}
        )
        record = build_success_record(
            fingerprint,
            dag_id=DAG_ID,
            run_id=done.run_id,
            run_key=folder.name,
            results_uri=str(folder),
            report_uri=str(folder / "report" / "report.html"),
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_local_record(folder.parent, record)
        time.sleep(1.1)  # the skipped run starts after the record was written
        skipped = dag().test(run_conf=conf)
        yield {
            "failed": failed.run_id,
            "done": done.run_id,
            "skipped": skipped.run_id,
            "root": root,
            "states": (str(failed.state), str(done.state), str(skipped.state)),
        }


@pytest.fixture(scope="module")
def client(runs):
    from airflow.api_fastapi.app import init_auth_manager
    from fastapi.testclient import TestClient

    from include.ui.app import create_app

    init_auth_manager()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRUITS_RESULTS_DIR", str(runs["root"]))
        yield TestClient(create_app())


def _token(role: str | None) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=f"u-{role}", role=role)
    return {"Authorization": f"Bearer {get_auth_manager().generate_jwt(user)}"}


def test_the_runs_ended_as_the_scenarios_need(runs):
    assert runs["states"] == ("failed", "success", "success")


@pytest.mark.parametrize("tail", ["report", "report/pca_scatter.png", "metrics.json", "costs"])
def test_every_run_endpoint_needs_a_user_who_may_read_the_dag(client, runs, tail):
    url = _url(runs["done"], tail)
    assert client.get(url).status_code == 401  # no token
    assert client.get(url, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    assert client.get(url, headers=_token(None)).status_code == 403  # no role: no DAG access
    assert client.get(url, headers=_token("viewer")).status_code == 200


def test_the_runs_page_needs_a_user_who_may_read_a_pipeline_dag(client):
    assert client.get("/runs").status_code == 401
    assert client.get("/runs", headers=_token(None)).status_code == 403
    assert client.get("/runs", headers=_token("viewer")).status_code == 200


def test_a_run_with_results_serves_its_report_plots_metrics_and_costs(client, runs):
    viewer = _token("viewer")
    html = client.get(_url(runs["done"]), headers=viewer).text
    assert "REPORT-OF-DONE" in html
    assert 'href="/fruits/runs/fruits_local_pipeline/' in html  # the bar of links
    png = client.get(_url(runs["done"], "report/pca_scatter.png"), headers=viewer)
    assert png.content == PNG
    assert png.headers["content-type"] == "image/png"
    metrics = client.get(_url(runs["done"], "metrics.json"), headers=viewer).json()
    assert metrics["pca"]["k"] == 2
    costs = client.get(_url(runs["done"], "costs"), headers=viewer).json()
    assert (costs["kind"], costs["actual_usd"], costs["estimated_usd"]) == ("local", 0.0, None)


def test_a_failed_run_says_which_task_failed(client, runs):
    html = client.get(_url(runs["failed"]), headers=_token("viewer")).text
    assert 'data-kind="failed"' in html
    assert "validate_dataset" in html
    assert "REPORT-OF-DONE" not in html


def test_a_skipped_run_links_to_the_run_holding_its_results(client, runs):
    html = client.get(_url(runs["skipped"]), headers=_token("viewer")).text
    assert 'data-kind="skipped"' in html
    tab = f"/dags/fruits_local_pipeline/runs/{quote(runs['done'], safe='')}/plugin/fruits_report"
    assert f'href="{tab}" target="_top"' in html  # the earlier run's Report tab
    assert "REPORT-OF-DONE" not in html


@pytest.mark.parametrize(
    ("dag_id", "run_key", "tail"),
    [
        (DAG_ID, "done", "report/..%2Fsecret.txt"),
        (DAG_ID, "done", "report/secret.txt"),
        (DAG_ID, "done", "report/.hidden.png"),
        (DAG_ID, "done", "_SUCCESS"),
        (DAG_ID, "done", "report/missing.png"),
        (DAG_ID, "no-such-run", "report"),
        (DAG_ID, "no-such-run", "metrics.json"),
        ("fruits_emr_sweeper", "done", "metrics.json"),
        ("not_a_dag", "done", "report"),
    ],
)
def test_unknown_runs_files_and_traversal_are_404(client, runs, dag_id, run_key, tail):
    run_id = runs.get(run_key, run_key)
    response = client.get(_url(run_id, tail, dag_id=dag_id), headers=_token("viewer"))
    assert response.status_code == 404
    assert "outside the run" not in response.text


def test_a_run_id_cannot_climb_out_of_the_dag_folder(client, runs):
    # An encoded "../" in the run id is not a run Airflow has: 404 before any file is read.
    response = client.get(
        _url("../" + Path(runs["root"]).name, "metrics.json"), headers=_token("viewer")
    )
    assert response.status_code == 404


def test_the_runs_page_lists_each_run_with_its_figures(client, runs, monkeypatch):
    monkeypatch.setattr("include.ui.resources.active_resources", _no_aws)
    html = client.get("/runs", headers=_token("viewer")).text
    for key in ("done", "failed", "skipped"):
        assert runs[key] in html
    done_row = html.split(runs["done"])[1].split("</tr>")[0]
    assert "50.0%" in done_row  # the variance kept at k
    assert "20 / 4" in done_row  # featurised / reused
    assert ">report<" in done_row
    assert ">skipped<" in html.split(runs["skipped"])[1].split("</tr>")[0]
    assert ">failed<" in html.split(runs["failed"])[1].split("</tr>")[0]


def _no_aws(config):
    return {
        "ttl_hours": 1.0,
        "region": "eu-west-1",
        "clusters": [],
        "applications": [],
        "error": None,
    }


def test_a_run_with_results_but_no_report_says_so(client, runs):
    from include.params.run_paths import run_results_dir

    report = run_results_dir(runs["root"], DAG_ID, runs["done"]) / "report" / "report.html"
    saved = report.read_text()
    report.unlink()
    try:
        html = client.get(_url(runs["done"]), headers=_token("viewer")).text
    finally:
        report.write_text(saved)
    assert 'data-kind="missing"' in html
    assert "has results but no report" in html
