"""The plugin's FastAPI app, mounted by ``plugins/fruits_ui.py`` under :data:`URL_PREFIX`.

Endpoints (``<run>`` = ``/runs/<dag id>/<run id>``, the run id URL-encoded):

* ``GET <run>/report``: the run's HTML report, or a page saying why it has none (failed,
  skipped as unchanged: with a link to the earlier run holding the same results).
* ``GET <run>/report/<file>``: a file of the report folder (``*.png``, ``*.html``).
* ``GET <run>/metrics.json``: the job's metrics; ``GET <run>/costs``: estimated and actual
  cost (JSON).
* ``GET /runs``: the "Fruits runs & costs" page: active EMR clusters and Serverless
  applications, then the recent runs of the pipeline DAGs.

Plugin endpoints are not protected by Airflow by default: each one here depends on Airflow's
own security dependencies (``airflow.api_fastapi.core_api.security``): an authenticated user
(401 without a token, 403 with a bad one) with read access to the run's DAG
(``requires_access_dag("GET", RUN)``: 403 otherwise); ``/runs`` lists only the DAGs the user
may read and shows the AWS resources only to a reader of an EMR DAG. Only the files of
:mod:`include.ui.results` are ever read; an unknown DAG, run or file is 404.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

# At module level: FastAPI resolves the endpoints' (string) annotations in these globals.
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response

from include.config import load_config
from include.params.run_paths import run_results_dir
from include.ui import pages
from include.ui.resources import active_resources
from include.ui.results import (
    EMR_DAGS,
    PIPELINE_DAGS,
    NotServed,
    check_pipeline_dag,
    cost_figures,
    last_success_record,
    read_result,
    run_summary,
)
from include.ui.runs import (
    Outcome,
    RunInfo,
    earlier_run_of_skip,
    get_run,
    outcome,
    recent_runs,
    task_states,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from include.config import PipelineConfig

URL_PREFIX = "/fruits"
RUNS_SHOWN = 50


def _config() -> PipelineConfig:

    return load_config()


def _known_run(session: Session, dag_id: str, run_id: str) -> RunInfo:
    try:
        check_pipeline_dag(dag_id)
    except NotServed as exc:
        raise HTTPException(404, str(exc)) from None
    run = get_run(session, dag_id, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r} of {dag_id}")
    return run


def _read(config: PipelineConfig, dag_id: str, run_id: str, name: str) -> Any:
    try:
        return read_result(config, dag_id, run_id, name)
    except NotServed as exc:
        raise HTTPException(404, str(exc)) from None


def _why_no_report(session: Session, config: PipelineConfig, run: RunInfo) -> str:

    folder = run_results_dir(config.results_dir, run.dag_id, run.run_id)
    has = (folder / "metrics.json").is_file()
    result = outcome(run, task_states(session, run.dag_id, run.run_id), has_results=has)
    earlier, note = None, ""
    if result.kind == "skipped":
        try:
            record = last_success_record(config, run.dag_id)
        except Exception as exc:  # a damaged record or S3 out of reach: said on the page
            record, note = None, f"the last-success record could not be read: {exc}"
        if record is not None or not note:
            earlier, note = earlier_run_of_skip(record, run)
    elif result.kind == "results":  # metrics but no report (the report task failed)
        result = Outcome("missing", f"run {run.run_id} has results but no report")
    return pages.no_results_page(
        dag_id=run.dag_id,
        run_id=run.run_id,
        kind=result.kind,
        text=result.text,
        earlier=earlier,
        note=note,
    )


def create_app() -> FastAPI:
    """The app; its routes are relative to :data:`URL_PREFIX` (where the plugin mounts it)."""
    app = FastAPI(title="Fruits runs & costs", docs_url=None, redoc_url=None, openapi_url=None)
    read_run = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]

    @app.get("/runs/{dag_id}/{run_id}/report", dependencies=read_run)
    def report(dag_id: str, run_id: str, session: SessionDep) -> HTMLResponse:
        """The run's report (a bar of links on top), or why it has none."""
        try:
            check_pipeline_dag(dag_id)
        except NotServed as exc:
            return HTMLResponse(f"<p>{pages.esc(exc)}: no report.</p>", status_code=404)
        run = _known_run(session, dag_id, run_id)
        config = _config()
        try:
            served = read_result(config, dag_id, run_id, "report/report.html")
        except NotServed:
            return HTMLResponse(_why_no_report(session, config, run))
        bar = pages.report_bar(URL_PREFIX, dag_id, run_id, served.source)
        return HTMLResponse(pages.with_bar(served.content.decode("utf-8"), bar))

    @app.get("/runs/{dag_id}/{run_id}/report/{name}", dependencies=read_run)
    def report_file(dag_id: str, run_id: str, name: str, session: SessionDep) -> Response:
        """A file of the run's report folder (its plots)."""
        _known_run(session, dag_id, run_id)
        served = _read(_config(), dag_id, run_id, f"report/{name}")
        return Response(served.content, media_type=served.media_type)

    @app.get("/runs/{dag_id}/{run_id}/metrics.json", dependencies=read_run)
    def metrics(dag_id: str, run_id: str, session: SessionDep) -> Response:
        """The job's ``metrics.json`` of the run."""
        _known_run(session, dag_id, run_id)
        served = _read(_config(), dag_id, run_id, "metrics.json")
        return Response(served.content, media_type=served.media_type)

    @app.get("/runs/{dag_id}/{run_id}/costs", dependencies=read_run)
    def costs(dag_id: str, run_id: str, session: SessionDep) -> JSONResponse:
        """Estimated and actual cost of the run (USD), from what it published."""

        _known_run(session, dag_id, run_id)
        config = _config()
        folder = run_results_dir(config.results_dir, dag_id, run_id)
        if (folder / "metrics.json").is_file():
            return JSONResponse({"source": str(folder), **cost_figures(folder)})

        served = _read(config, dag_id, run_id, "cost_estimate.json")  # EMR: from S3
        estimate = json.loads(served.content)
        return JSONResponse(
            {
                "source": served.source,
                "estimated_usd": estimate.get("estimated_usd"),
                "actual_usd": None,
                "kind": estimate.get("kind", "emr"),
                "error": "the actual cost is in the local copy only (cluster.json, job_run.json)",
            }
        )

    @app.get("/runs")
    def runs(user: GetUserDep, session: SessionDep) -> HTMLResponse:
        """What bills now and the recent runs of the pipeline DAGs the user may read."""
        readable = get_auth_manager().filter_authorized_dag_ids(
            dag_ids=set(PIPELINE_DAGS), user=user, method="GET"
        )
        if not readable:
            raise HTTPException(403, "you may read none of the project's pipeline DAGs")

        config = _config()
        rows = []
        for run in recent_runs(session, [d for d in PIPELINE_DAGS if d in readable], RUNS_SHOWN):
            folder = run_results_dir(config.results_dir, run.dag_id, run.run_id)
            summary = run_summary(folder)
            kind = "report" if summary else outcome(run, {}, has_results=False).kind
            if summary is None and run.state == "success":
                states = task_states(session, run.dag_id, run.run_id)
                kind = outcome(run, states, has_results=False).kind
            rows.append(
                {
                    "dag_id": run.dag_id,
                    "run_id": run.run_id,
                    "state": run.state,
                    "duration_s": run.duration_s,
                    "summary": summary,
                    "outcome": kind,
                }
            )
        resources = active_resources(config) if readable & set(EMR_DAGS) else None
        return HTMLResponse(pages.runs_page(rows=rows, resources=resources))

    return app
