"""Headless Chromium over the DevTools protocol, for the browser tests on the native stack.

:func:`headless_chromium` starts Debian's ``chromium`` (its own profile, loopback only) and
yields the page's DevTools WebSocket URL, stopping it by PID afterwards; :func:`devtools`
is an async context giving ``call(method, **params)``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from include.local.airflow_stack import stop_processes

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
Call = Callable[..., Awaitable[dict]]


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def headless_chromium(workdir: Path, timeout: float = 30) -> Iterator[str]:
    """Start headless Chromium; yield its page's DevTools WebSocket URL; stop it by PID
    (asserting no process is left). Skips the test when chromium is not installed."""
    chromium = chromium_binary()
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    profile = workdir / "chromium-profile"
    log = (workdir / "chromium.log").open("wb")
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
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"chromium's DevTools port never came:\n{_tail(workdir)}")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with _OPENER.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [p for p in json.loads(resp.read()) if p["type"] == "page"]
        yield pages[0]["webSocketDebuggerUrl"]
    finally:
        survivors = stop_processes({"chromium": proc})
        assert not survivors, f"chromium processes left behind: {survivors}"


def _tail(workdir: Path) -> str:
    return (workdir / "chromium.log").read_text(errors="replace")[-2000:]


@contextlib.asynccontextmanager
async def devtools(ws_url: str) -> AsyncIterator[Call]:
    """``call(method, **params)`` over the page's DevTools WebSocket: the reply's result."""
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

        yield call
