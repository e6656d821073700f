"""Every DAG through a real Airflow, started as ``make airflow`` starts it.

:mod:`include.local.airflow_stack` starts the EMR emulator (``python -m emr_emulator``, the
command of the compose ``moto`` service) and the api-server, scheduler, dag-processor and
triggerer natively (LocalExecutor, small parallelism) on a SQLite metadata DB in a
temporary AIRFLOW_HOME, all on 127.0.0.1. Runs are triggered through the REST API
``/api/v2`` exactly as the UI's Trigger button does (unpause, then POST a dagRun with the
form's Params as ``conf``). Nothing plays the cluster's part: the emulator runs the EMR
step's spark-submit on local Spark, so the run downloads the real job's results.

Every process the stack started is stopped by PID (whole process groups and their
children) in the fixture's teardown, even when a test fails, and the teardown asserts
that none is left.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.local.airflow_stack import AirflowStack, StackSettings, free_port
from tests.integration.browser import devtools, headless_chromium

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "fruits_emr_pipeline"
LOCAL_DAG_ID = "fruits_local_pipeline"
SWEEPER_DAG_ID = "fruits_emr_sweeper"
BUCKET = "fruits-integration-bucket"
REGION = "eu-west-1"
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 900  # the real job runs (a few minutes on 2 shared cores)
# Loopback only: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Stack:
    """The running stack and how to reach its REST API."""

    airflow: AirflowStack
    token: str = ""

    @property
    def api(self) -> str:
        return self.airflow.settings.api_url

    @property
    def home(self) -> Path:
        return self.airflow.home

    @property
    def results_dir(self) -> Path:
        return self.airflow.settings.results_dir

    @property
    def emulator_url(self) -> str:
        return self.airflow.settings.emulator_url

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One REST call to the api-server; returns (status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with _OPENER.open(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, str(exc)  # not listening (yet)
        try:
            return status, json.loads(raw or b"null")
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def logs_tail(self, chars: int = 4000) -> str:
        return self.airflow.logs_tail(chars)


def _wait_until(what: str, check, timeout: float, stack: Stack, interval: float = 1.0):
    try:
        return stack.airflow.wait_until(what, check, timeout, interval)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(str(exc))


def _aws(stack: Stack, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=stack.emulator_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sample_dataset) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("airflow-home")
    data = home / "dataset"
    shutil.copytree(sample_dataset, data)
    settings = StackSettings(
        home=home,
        api_port=free_port(),
        emulator_port=free_port(),
        bucket=BUCKET,
        region=REGION,
        data_dir=data,
        results_dir=home / "results",
        emulator_dir=home / "emr-emulator",
        extra_env={"FRUITS_EMU_LOG_DELAY_S": "1"},
    )
    yield from started_stack(settings, _all_admins_token)


def _all_admins_token(stack: Stack) -> str:
    """What the UI does without a login form when every user is an admin."""
    status, body = stack.request("GET", "/auth/token")
    assert status in (200, 201), body
    return body["access_token"]


def started_stack(settings: StackSettings, login: Callable[[Stack], str]) -> Iterator[Stack]:
    """Start the stack, log in (``login`` returns the token), yield it; then stop every
    process it started, asserting none is left (also when a test failed)."""
    airflow = AirflowStack(settings)
    stack = Stack(airflow=airflow)
    try:
        try:
            airflow.start()
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(str(exc))
        stack.token = login(stack)
        yield stack
    finally:
        survivors = airflow.stop()
        assert not survivors, f"processes left behind: {survivors}"


# What the trigger form sends for a small run; the rest are the Params' defaults.
BASE_CONF = {
    "mode": "mini",
    "max_images": 16,
    "weights": "none",
    "pca_k": 2,
    "pca_variance": None,
    "core_nodes": 1,
    "poke_interval_seconds": 2,
    "step_timeout_seconds": 600,
    # Nothing installs on an emulated node, and the test must not reach PyPI
    # (tests/include/test_wheelhouse.py and tests/dags cover the wheelhouse).
    "wheelhouse": False,
}


def _enable_dag(stack: Stack, dag_id: str = DAG_ID) -> None:
    _wait_until(
        f"the dag-processor to register {dag_id}",
        lambda: stack.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200,
        STARTUP_TIMEOUT_S,
        stack,
    )
    status, body = stack.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    assert status == 200, body
    assert body["is_paused"] is False


def _trigger(stack: Stack, conf: dict[str, Any], dag_id: str = DAG_ID) -> str:
    """POST a dagRun with the form's values as conf, as the UI's Trigger button does."""
    status, run = stack.request(
        "POST",
        f"/api/v2/dags/{dag_id}/dagRuns",
        {"logical_date": None, "conf": conf, "note": "integration test"},
    )
    assert status == 200, run
    assert run["conf"] == conf
    assert run["state"] == "queued"
    return run["dag_run_id"]


def _run_to_the_end(stack: Stack, run_id: str, dag_id: str = DAG_ID) -> dict:
    """Wait until the run ends; return its task states and tries (asserting success)."""

    def finished() -> dict | None:
        status, body = stack.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        assert status == 200, body
        return body if body["state"] in ("success", "failed") else None

    final = _wait_until("the run to finish", finished, RUN_TIMEOUT_S, stack, interval=1.0)
    _, tis = stack.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
    tries = {ti["task_id"]: ti["try_number"] for ti in tis["task_instances"]}
    assert final["state"] == "success", f"{states}\n{stack.logs_tail()}"
    return {"states": states, "tries": tries}


def _cluster_of_run(stack: Stack, run_id: str) -> dict[str, Any]:
    emr = _aws(stack, "emr")
    found = []
    for summary in emr.list_clusters()["Clusters"]:
        cluster = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
        if {t["Key"]: t["Value"] for t in cluster["Tags"]}.get("run_id") == run_id:
            found.append(cluster)
    (cluster,) = found
    return cluster


@pytest.mark.timeout(1200)
def test_emr_dag_triggered_through_the_rest_api_runs_the_real_job(stack):
    """Deferrable create and sensor (the triggerer resumes them); the emulator runs the
    real job; the run ends success with its results downloaded and the cluster gone."""
    _enable_dag(stack)
    # The trigger form is built from the DAG's Params: the API serves them to the UI.
    status, details = stack.request("GET", f"/api/v2/dags/{DAG_ID}/details")
    assert status == 200, details
    assert {"mode", "weights", "instance_type", "core_nodes"} <= set(details["params"])

    run_id = _trigger(stack, {**BASE_CONF, "deferrable": True})
    result = _run_to_the_end(stack, run_id)

    states = result["states"]
    for task in ("wait_for_feature_step", "download_results", "build_report"):
        assert states[task] == "success", states
    assert states["terminate_emr_cluster"] == "success"
    assert states["fail_run_if_any_task_failed"] == "skipped"
    assert result["tries"]["wait_for_feature_step"] == 1  # resumed, not retried
    run_logs = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    trigger_logs = list((run_logs / "task_id=wait_for_feature_step").glob("*.trigger.*.log"))
    assert trigger_logs, "the triggerer never ran the step trigger"
    assert "Trigger fired event" in trigger_logs[0].read_text()

    cluster = _cluster_of_run(stack, run_id)
    emr = _aws(stack, "emr")
    deadline = time.monotonic() + 60
    while cluster["Status"]["State"] != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(1)
        cluster = emr.describe_cluster(ClusterId=cluster["Id"])["Cluster"]
    assert cluster["Status"]["State"] == "TERMINATED"
    (step,) = emr.list_steps(ClusterId=cluster["Id"])["Steps"]
    assert step["Status"]["State"] == "COMPLETED"
    args = step["Config"]["Args"]
    run_key = args[args.index("--run-id") + 1]
    run_dir = stack.results_dir / DAG_ID / run_key
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run_id"] == run_key
    assert metrics["counts"]["valid_images"] == BASE_CONF["max_images"]  # the real job's count
    assert metrics["pca"]["k"] == 2
    assert list((run_dir / "pca").glob("*.parquet"))
    assert json.loads((run_dir / "cluster.json").read_text())["Cluster"]["Id"] == cluster["Id"]
    assert "EMR cluster cost" in (run_dir / "report" / "report.html").read_text()


@pytest.mark.timeout(900)
def test_local_dag_triggered_through_the_rest_api_succeeds(stack):
    _enable_dag(stack, LOCAL_DAG_ID)
    conf = {"weights": "none", "max_images": 16, "pca_k": 2, "pca_variance": None}
    run_id = _trigger(stack, conf, LOCAL_DAG_ID)
    states = _run_to_the_end(stack, run_id, LOCAL_DAG_ID)["states"]
    assert set(states.values()) == {"success"}, states
    dag_dir = stack.results_dir / LOCAL_DAG_ID
    runs = [p for p in dag_dir.iterdir() if (p / "metrics.json").is_file()]
    metrics = [json.loads((p / "metrics.json").read_text()) for p in runs]
    assert any(m["counts"]["valid_images"] == 16 and m["pca"]["k"] == 2 for m in metrics)


@pytest.mark.timeout(300)
def test_sweeper_dag_triggered_through_the_rest_api_succeeds(stack):
    _enable_dag(stack, SWEEPER_DAG_ID)
    run_id = _trigger(stack, {"dry_run": True, "ttl_hours": 1}, SWEEPER_DAG_ID)
    states = _run_to_the_end(stack, run_id, SWEEPER_DAG_ID)["states"]
    assert states == {
        "find_stale_clusters": "success",
        "terminate_stale_clusters": "success",
        "sweep_serverless_applications": "success",  # through the emulator's EMR Serverless
    }


async def _cdp_page_text(ws_url: str, url: str, *, click: str, expect: list[str]) -> str:
    """Open ``url`` over the DevTools protocol, click the button labelled ``click``, and
    return the page text once every string of ``expect`` is in it (or at the deadline)."""
    import asyncio

    async with devtools(ws_url) as call:

        async def text() -> str:
            result = await call("Runtime.evaluate", expression="document.body.innerText")
            return result.get("result", {}).get("value") or ""

        await call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        clicked = False
        page = ""
        while time.monotonic() < deadline:
            page = await text()
            if not clicked:
                found = await call(
                    "Runtime.evaluate",
                    expression=(
                        "(() => { const b = [...document.querySelectorAll('button')]"
                        f".find(b => b.innerText.trim() === {json.dumps(click)});"
                        " if (b) { b.click(); return true } return false })()"
                    ),
                )
                clicked = bool(found.get("result", {}).get("value"))
            elif all(s in page for s in expect):
                return page
            await asyncio.sleep(0.5)
        return page


@pytest.mark.timeout(180)
def test_trigger_form_renders_the_params_in_a_browser(stack, tmp_path):
    """Headless Chromium opens the DAG page, clicks Trigger and sees the Params' form."""
    import asyncio

    _enable_dag(stack)
    with headless_chromium(tmp_path) as ws_url:
        # The dialog's heading, then Param titles (from include/params/common.py) in its form.
        expected = [
            f"Trigger Dag - {DAG_ID}",
            "Run Parameters",
            "MobileNetV2 weights",
            "Instance type",
            "Core nodes",
            "EMR release",
        ]
        page = asyncio.run(
            _cdp_page_text(ws_url, f"{stack.api}/dags/{DAG_ID}", click="Trigger", expect=expected)
        )
    (stack.home / "trigger_form.txt").write_text(page)
    for title in expected:
        assert title in page, f"{title!r} not in the trigger form:\n{page[:3000]}"
