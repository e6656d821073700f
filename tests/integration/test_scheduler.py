"""The EMR DAG through a real Airflow: api-server, scheduler, dag-processor, triggerer.

Started natively, as docker-compose.yaml starts them (LocalExecutor, small parallelism),
on a SQLite metadata DB in a temporary AIRFLOW_HOME, with AWS = a moto server on 127.0.0.1
run in this process (so the test can reach its backend). The run is triggered through the
REST API ``/api/v2`` exactly as the UI's Trigger button does (unpause, then POST a dagRun
with the form's Params as ``conf``). moto never finishes an EMR step on its own: the test
plays the cluster's part, writes the job's outputs to S3 and marks the step COMPLETED.

Every process the test started is stopped by PID (whole process groups and their
children) in the fixture's teardown, even when the test fails, and the teardown asserts
that none is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.emr_fakes import moto_clusters, step_arg, write_job_outputs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "fruits_emr_pipeline"
BUCKET = "fruits-integration-bucket"
REGION = "eu-west-1"
STARTUP_TIMEOUT_S = 90
RUN_TIMEOUT_S = 180
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Loopback only: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """The running Airflow + moto, and how to reach them."""

    home: Path
    api: str
    moto_url: str
    env: dict[str, str]
    results_dir: Path
    dataset_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""

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
        """The end of every component's output, for failure messages."""
        parts = []
        for name in COMPONENTS:
            path = self.home / f"{name}.log"
            if path.exists():
                parts.append(f"----- {name} -----\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


def _airflow_env(home: Path, *, api_port: int, moto_url: str, results: Path, data: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Log servers are skipped (--skip-serve-logs): they bind every interface.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            # The same secrets in every component (each would generate its own otherwise).
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "PYTHONPATH": str(REPO_ROOT),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"region_name": REGION, "endpoint_url": moto_url},
                }
            ),
            "FRUITS_BUCKET": BUCKET,
            "FRUITS_REGION": REGION,
            "FRUITS_DATA_DIR": str(data),
            "FRUITS_RESULTS_DIR": str(results),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.pop("AWS_PROFILE", None)
    return env


def _airflow_bin() -> str:
    airflow = Path(sys.executable).with_name("airflow")
    return str(airflow) if airflow.exists() else "airflow"


def _start(stack: Stack, name: str, args: list[str]) -> None:
    log = (stack.home / f"{name}.log").open("wb")
    # A new session = a process group of its own, stopped as a whole in the teardown.
    stack.procs[name] = subprocess.Popen(
        [_airflow_bin(), *args],
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=stack.home,
    )
    log.close()


def _process_tree(pids: list[int]) -> list[Any]:
    import psutil

    found: dict[int, Any] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        for p in [proc, *proc.children(recursive=True)]:
            found[p.pid] = p
    return list(found.values())


def _stop_all(procs: dict[str, subprocess.Popen]) -> list[str]:
    """SIGTERM each group, wait, SIGKILL what is left; return descriptions of survivors."""
    import psutil

    tree = _process_tree([p.pid for p in procs.values()])
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=20)
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for p in alive:  # children that left the group (their own session) are killed by PID
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _, alive = psutil.wait_procs(alive, timeout=10)
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return [f"{p.pid} {p.name()}" for p in alive if p.is_running()]


def _wait_until(what: str, check, timeout: float, stack: Stack, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in stack.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}\n{stack.logs_tail()}")
        result = check()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{stack.logs_tail()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sample_dataset) -> Iterator[Stack]:
    import boto3
    from moto.server import ThreadedMotoServer

    home = tmp_path_factory.mktemp("airflow-home")
    data = home / "dataset"
    shutil.copytree(sample_dataset, data)
    results = home / "results"
    moto_port, api_port = _free_port(), _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{moto_port}"
    stack = Stack(
        home=home,
        api=f"http://127.0.0.1:{api_port}",
        moto_url=moto_url,
        env=_airflow_env(home, api_port=api_port, moto_url=moto_url, results=results, data=data),
        results_dir=results,
        dataset_dir=data,
    )
    try:
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_url)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        migrate = subprocess.run(
            [_airflow_bin(), "db", "migrate"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        _start(
            stack, "api-server", ["api-server", "-H", "127.0.0.1", "-p", str(api_port), "-w", "1"]
        )
        _start(stack, "scheduler", ["scheduler", "--skip-serve-logs"])
        _start(stack, "dag-processor", ["dag-processor"])
        _start(stack, "triggerer", ["triggerer", "--skip-serve-logs"])
        _wait_until(
            "the api-server",
            lambda: stack.request("GET", "/api/v2/version")[0] == 200,
            STARTUP_TIMEOUT_S,
            stack,
        )
        # What the UI does without a login form when every user is an admin.
        status, body = stack.request("GET", "/auth/token")
        assert status in (200, 201), body
        stack.token = body["access_token"]
        yield stack
    finally:
        survivors = _stop_all(stack.procs)
        moto.stop()
        assert not survivors, f"processes left behind: {survivors}"


def _complete_running_step(s3: Any) -> dict[str, str] | None:
    """Play the cluster: when the step runs, write its outputs and mark it COMPLETED."""
    for cluster in moto_clusters():
        for step in cluster.steps:
            if step.state == "RUNNING":
                output, run_id = step_arg(step.args, "--output"), step_arg(step.args, "--run-id")
                prefix = write_job_outputs(s3, output, run_id)
                step.state = "COMPLETED"
                return {"cluster_id": cluster.id, "run_key": run_id, "prefix": prefix}
    return None


# What the trigger form sends for a small run; the rest are the Params' defaults.
BASE_CONF = {
    "mode": "mini",
    "max_images": 16,
    "weights": "none",
    "pca_k": 2,
    "pca_variance": None,
    "core_nodes": 1,
    "poke_interval_seconds": 2,
    "step_timeout_seconds": 240,
}
# After the sensor defers, the step completes this much later: the scheduler must first
# drain the worker's defer-exit event, or it fails the resumed try (apache/airflow#72716,
# open in 3.3.x); a real EMR step takes minutes, never two seconds.
DEFERRED_COMPLETION_DELAY_S = 10


def _enable_dag(stack: Stack) -> None:
    _wait_until(
        f"the dag-processor to register {DAG_ID}",
        lambda: stack.request("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200,
        STARTUP_TIMEOUT_S,
        stack,
    )
    status, body = stack.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert status == 200, body
    assert body["is_paused"] is False


def _trigger(stack: Stack, conf: dict[str, Any]) -> str:
    """POST a dagRun with the form's values as conf, as the UI's Trigger button does."""
    status, run = stack.request(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"logical_date": None, "conf": conf, "note": "integration test"},
    )
    assert status == 200, run
    assert run["conf"] == conf
    assert run["state"] == "queued"
    return run["dag_run_id"]


def _sensor_state(stack: Stack, run_id: str) -> str | None:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/wait_for_feature_step"
    status, body = stack.request("GET", path)
    return body.get("state") if status == 200 else None


def _run_to_the_end(stack: Stack, run_id: str, *, complete_after_deferral: bool) -> dict:
    """Play the cluster until the run ends; return the step played and the task states."""
    import boto3

    s3 = boto3.client("s3", region_name=REGION, endpoint_url=stack.moto_url)
    step: dict[str, str] = {}
    deferred_at: list[float] = []

    def finished() -> dict | None:
        if not step:
            if not complete_after_deferral:
                step.update(_complete_running_step(s3) or {})
            elif deferred_at:
                if time.monotonic() - deferred_at[0] >= DEFERRED_COMPLETION_DELAY_S:
                    step.update(_complete_running_step(s3) or {})
            elif _sensor_state(stack, run_id) == "deferred":
                deferred_at.append(time.monotonic())
        status, body = stack.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        assert status == 200, body
        return body if body["state"] in ("success", "failed") else None

    final = _wait_until("the run to finish", finished, RUN_TIMEOUT_S, stack, interval=0.5)
    _, tis = stack.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
    tries = {ti["task_id"]: ti["try_number"] for ti in tis["task_instances"]}
    assert final["state"] == "success", f"{states}\n{stack.logs_tail()}"
    assert step, "the run succeeded without its Spark step ever running"
    return {"step": step, "states": states, "tries": tries}


def _assert_cluster_gone_and_results_local(stack: Stack, run_id: str, step: dict) -> None:
    import boto3

    emr = boto3.client("emr", region_name=REGION, endpoint_url=stack.moto_url)
    cluster = emr.describe_cluster(ClusterId=step["cluster_id"])["Cluster"]
    assert cluster["Status"]["State"] == "TERMINATED"
    tags = {t["Key"]: t["Value"] for t in cluster["Tags"]}
    assert tags["run_id"] == run_id

    run_dir = stack.results_dir / step["run_key"]
    assert json.loads((run_dir / "metrics.json").read_text())["run_id"] == step["run_key"]
    assert list((run_dir / "pca").glob("*.parquet"))
    assert json.loads((run_dir / "cluster.json").read_text())["Cluster"]["Id"] == step["cluster_id"]
    assert "EMR cluster cost" in (run_dir / "report" / "report.html").read_text()


@pytest.mark.timeout(300)
def test_emr_dag_triggered_through_the_rest_api(stack):
    _enable_dag(stack)
    # The trigger form is built from the DAG's Params: the API serves them to the UI.
    status, details = stack.request("GET", f"/api/v2/dags/{DAG_ID}/details")
    assert status == 200, details
    assert {"mode", "weights", "instance_type", "core_nodes"} <= set(details["params"])

    run_id = _trigger(stack, {**BASE_CONF, "deferrable": False})
    result = _run_to_the_end(stack, run_id, complete_after_deferral=False)

    states = result["states"]
    assert states["wait_for_feature_step"] == "success"
    assert states["download_results"] == "success"
    assert states["build_report"] == "success"
    assert states["terminate_emr_cluster"] == "success"
    assert states["fail_run_if_any_task_failed"] == "skipped"
    _assert_cluster_gone_and_results_local(stack, run_id, result["step"])


@pytest.mark.timeout(300)
def test_deferred_wait_is_resumed_by_the_triggerer(stack):
    _enable_dag(stack)

    # force: the first test's run has the same fingerprint (deferrable does not change the
    # results), so without it this run would be skipped as unchanged.
    run_id = _trigger(stack, {**BASE_CONF, "deferrable": True, "force": True})
    result = _run_to_the_end(stack, run_id, complete_after_deferral=True)

    assert result["states"]["wait_for_feature_step"] == "success"
    assert result["tries"]["wait_for_feature_step"] == 1  # resumed, not retried
    run_logs = stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    trigger_logs = list((run_logs / "task_id=wait_for_feature_step").glob("*.trigger.*.log"))
    assert trigger_logs, "the triggerer never ran the step trigger"
    assert "Trigger fired event" in trigger_logs[0].read_text()
    _assert_cluster_gone_and_results_local(stack, run_id, result["step"])


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def _cdp_page_text(ws_url: str, url: str, *, click: str, expect: list[str]) -> str:
    """Open ``url`` over the DevTools protocol, click the button labelled ``click``, and
    return the page text once every string of ``expect`` is in it (or at the deadline)."""
    import asyncio

    import websockets

    async with websockets.connect(ws_url, max_size=None) as ws:
        ids = iter(range(1, 10_000))

        async def call(method: str, **params: Any) -> dict:
            msg_id = next(ids)
            await ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("id") == msg_id:
                    return reply.get("result", {})

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

    chromium = _chromium()
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    _enable_dag(stack)
    profile = tmp_path / "chromium-profile"
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",  # runs as root in CI containers
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        port_file = profile / "DevToolsActivePort"
        _wait_until("chromium's DevTools port", port_file.exists, 30, stack, interval=0.2)
        port = int(port_file.read_text().split()[0])
        with _OPENER.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [p for p in json.loads(resp.read()) if p["type"] == "page"]
        # The dialog's heading, then Param titles (from include/params.py) in its form.
        expected = [
            f"Trigger Dag - {DAG_ID}",
            "Run Parameters",
            "MobileNetV2 weights",
            "Instance type",
            "Core nodes",
            "EMR release",
        ]
        page = asyncio.run(
            _cdp_page_text(
                pages[0]["webSocketDebuggerUrl"],
                f"{stack.api}/dags/{DAG_ID}",
                click="Trigger",
                expect=expected,
            )
        )
    finally:
        survivors = _stop_all({"chromium": proc})
        assert not survivors, f"chromium processes left behind: {survivors}"
    (stack.home / "trigger_form.txt").write_text(page)
    for title in expected:
        assert title in page, f"{title!r} not in the trigger form:\n{page[:3000]}"
