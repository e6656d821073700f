"""The UI plugin (plugins/fruits_ui.py) on the native stack ``make airflow`` starts.

A stack of its own (the ``stack`` fixture of test_scheduler.py, module-scoped), a real local
run of ``fruits_local_pipeline`` triggered through the REST API as the UI's button does
(forced, weights none), then the same run again, skipped as unchanged. Checked: the plugin is
listed by ``/api/v2/plugins``; its endpoints answer 401 without a token and serve the run with
one; headless Chromium renders the run's Report tab and the "Fruits runs & costs" page;
screenshots are kept in the stack's home (``ui-report-tab.png``, ``ui-runs-and-costs.png``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from include.local.airflow_stack import StackSettings, free_port
from tests.integration.browser import devtools, headless_chromium
from tests.integration.test_scheduler import (
    LOCAL_DAG_ID,
    Stack,
    _enable_dag,
    _run_to_the_end,
    _trigger,
    started_stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CONF = {"weights": "none", "max_images": 16, "pca_k": 2, "pca_variance": None}
_IFRAME_TEXT = (
    "(() => { const f = document.querySelector('iframe');"
    " return f && f.contentDocument && f.contentDocument.body"
    " ? f.contentDocument.body.innerText : '' })()"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sample_dataset) -> Iterator[Stack]:
    """The native stack as ``make airflow`` starts it, but with a login: every visitor is an
    admin there (Airflow adds an admin token to every request), which would hide the 401/403
    paths. Users: ``admin`` (the stack's token) and ``nobody`` (no role: no DAG access)."""
    home = tmp_path_factory.mktemp("airflow-ui-home")
    shutil.copytree(sample_dataset, home / "dataset")
    settings = StackSettings(
        home=home,
        api_port=free_port(),
        emulator_port=free_port(),
        data_dir=home / "dataset",
        results_dir=home / "results",
        emulator_dir=home / "emr-emulator",
        extra_env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,nobody:",
        },
    )
    yield from started_stack(settings, lambda stack: _login(stack, "admin"))


def _login(stack: Stack, user: str) -> str:
    """A JWT of ``user`` from the SimpleAuthManager's login endpoint (its generated password)."""
    passwords = json.loads(
        (stack.home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    status, body = stack.request(
        "POST", "/auth/token", {"username": user, "password": passwords[user]}
    )
    assert status in (200, 201), body
    return body["access_token"]


@pytest.fixture(scope="module")
def local_runs(stack):
    """A forced local run (results), then the same run again (skipped as unchanged)."""
    _enable_dag(stack, LOCAL_DAG_ID)
    done = _trigger(stack, {**CONF, "force": True}, LOCAL_DAG_ID)
    _run_to_the_end(stack, done, LOCAL_DAG_ID)
    skipped = _trigger(stack, CONF, LOCAL_DAG_ID)
    states = _run_to_the_end(stack, skipped, LOCAL_DAG_ID)["states"]
    assert states["run_feature_job"] == "skipped", states
    return {"done": done, "skipped": skipped}


def _get(stack: Stack, path: str, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(f"{stack.api}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _run_path(run_id: str, tail: str) -> str:
    return f"/fruits/runs/{LOCAL_DAG_ID}/{quote(run_id, safe='')}/{tail}"


@pytest.mark.timeout(300)
def test_the_plugin_is_loaded(stack):
    status, body = stack.request("GET", "/api/v2/plugins")
    assert status == 200, body
    (plugin,) = [p for p in body["plugins"] if p["name"] == "fruits_ui"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/fruits"]
    views = {v["name"]: v for v in plugin["external_views"]}
    assert views["Report"]["destination"] == "dag_run"
    assert views["Report"]["href"] == "/fruits/runs/{DAG_ID}/{RUN_ID}/report"
    assert views["Fruits runs & costs"]["destination"] == "nav"
    status, errors = stack.request("GET", "/api/v2/importErrors")
    assert status == 200, errors


@pytest.mark.timeout(1200)
def test_the_endpoints_need_a_token_and_serve_the_run(stack, local_runs):
    done = local_runs["done"]
    nobody = _login(stack, "nobody")
    for tail in ("report", "metrics.json", "costs"):
        assert _get(stack, _run_path(done, tail))[0] == 401
        assert _get(stack, _run_path(done, tail), "not-a-jwt")[0] == 403
        assert _get(stack, _run_path(done, tail), nobody)[0] == 403
    assert _get(stack, "/fruits/runs")[0] == 401
    assert _get(stack, "/fruits/runs", nobody)[0] == 403
    status, body = _get(stack, _run_path(done, "metrics.json"), stack.token)
    assert status == 200
    metrics = json.loads(body)
    assert metrics["counts"]["valid_images"] == 16
    assert metrics["pca"]["k"] == 2
    status, body = _get(stack, _run_path(done, "report"), stack.token)
    assert status == 200
    assert b"Fruits features report" in body
    status, body = _get(stack, _run_path(done, "report/pca_scatter.png"), stack.token)
    assert (status, body[:4]) == (200, b"\x89PNG")
    assert (
        _get(stack, _run_path(done, "report/..%2F..%2F_last_success.json"), stack.token)[0] == 404
    )
    assert _get(stack, _run_path("manual__nope", "report"), stack.token)[0] == 404
    assert _get(stack, "/fruits/runs/fruits_local_pipeline/x/airflow.cfg", stack.token)[0] == 404


async def _browse(
    ws_url: str, url: str, *, text_js: str, expect: list[str], png: Path, cookie: str = ""
) -> str:
    """Open ``url`` over the DevTools protocol, wait until ``text_js`` holds every string of
    ``expect`` (or 90 s), save a screenshot to ``png``, return that text."""
    import asyncio

    async with devtools(ws_url) as call:
        if cookie:  # the UI's session: what its login page leaves in the browser
            await call("Network.setCookie", name="_token", value=cookie, url=url, path="/")
        await call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        await call("Page.navigate", url=url)
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline:
            result = await call("Runtime.evaluate", expression=text_js)
            text = result.get("result", {}).get("value") or ""
            if all(s in text for s in expect):
                await asyncio.sleep(1)  # plots and fonts settle
                break
            await asyncio.sleep(0.5)
        shot = await call("Page.captureScreenshot", format="png")
        png.write_bytes(base64.b64decode(shot["data"]))
        return text


@pytest.mark.timeout(1200)
def test_the_report_tab_and_the_runs_page_render_in_a_browser(stack, local_runs, tmp_path):
    import asyncio

    done, skipped = local_runs["done"], local_runs["skipped"]
    with headless_chromium(tmp_path) as ws_url:
        run_page = f"{stack.api}/dags/{LOCAL_DAG_ID}/runs/{quote(done, safe='')}"
        report = asyncio.run(
            _browse(
                ws_url,
                f"{run_page}/plugin/fruits_report",
                text_js=_IFRAME_TEXT,
                expect=["Fruits features report", "Explained variance", "metrics.json"],
                png=stack.home / "ui-report-tab.png",
                cookie=stack.token,
            )
        )
        skipped_page = f"{stack.api}/dags/{LOCAL_DAG_ID}/runs/{quote(skipped, safe='')}"
        skip = asyncio.run(
            _browse(
                ws_url,
                f"{skipped_page}/plugin/fruits_report",
                text_js=_IFRAME_TEXT,
                expect=["skipped as unchanged", done],
                png=stack.home / "ui-report-tab-skipped.png",
            )
        )
        runs = asyncio.run(
            _browse(
                ws_url,
                f"{stack.api}/plugin/fruits_runs",
                text_js=_IFRAME_TEXT,
                expect=["Fruits runs & costs", "Running and billing now", done, skipped],
                png=stack.home / "ui-runs-and-costs.png",
            )
        )
    # Kept as test artifacts: in FRUITS_TEST_ARTIFACTS when set (CI uploads it), else the
    # stack's home (pytest's temporary folder).
    artifacts = Path(os.environ.get("FRUITS_TEST_ARTIFACTS") or stack.home)
    artifacts.mkdir(parents=True, exist_ok=True)
    if artifacts != stack.home:
        for name in ("ui-report-tab.png", "ui-report-tab-skipped.png", "ui-runs-and-costs.png"):
            shutil.copy(stack.home / name, artifacts / name)
    assert "Explained variance" in report, report[:2000]
    assert "skipped as unchanged" in skip, skip[:2000]
    assert f"Same results as {done}" in skip
    assert "No active cluster or application." in runs, runs[:3000]
    for line in runs.splitlines():
        if done in line:
            assert "report" in line
    for name in ("ui-report-tab.png", "ui-runs-and-costs.png"):
        assert (stack.home / name).read_bytes()[:4] == b"\x89PNG"
