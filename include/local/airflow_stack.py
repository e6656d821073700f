"""``make airflow``: the Airflow UI without Docker, with the offline EMR behind it.

Starts, natively and on loopback only, what docker-compose.yaml starts: the EMR emulator
(``python -m emr_emulator``, the same command as the compose ``moto`` service), then
``airflow db migrate`` on the embedded SQLite, and the api-server, scheduler,
dag-processor and triggerer (LocalExecutor, parallelism 4), each in a process group of
its own with its output in ``<home>/<name>.log``. The DAGs are created unpaused (a run
triggered from the UI runs at once) and the UI plugin of ``plugins/`` is loaded. Prints
the URL; Ctrl-C (or SIGTERM) stops every process it started, by PID, children included.

    python -m include.local.airflow_stack [--port 8080] [--emulator-port 5000] [--home .airflow-ui]

tests/integration/test_scheduler.py starts the stack with this module, as the target does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.config import REPO_ROOT
from include.staging.weights import decide_weights, download_imagenet_weights
from include.staging.weights import offline as weights_offline

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STARTUP_TIMEOUT_S = 120
# Loopback only: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StackSettings:
    """Where the stack lives and listens; paths default to the repository's data/."""

    home: Path
    api_port: int = 8080
    emulator_port: int = 5000
    bucket: str = "fruits-features-bucket"
    region: str = "eu-west-1"
    data_dir: Path = REPO_ROOT / "data" / "fruits-360-sample"
    results_dir: Path = REPO_ROOT / "data" / "results"
    emulator_dir: Path = REPO_ROOT / "data" / "emr-emulator"
    parallelism: int = 4
    # The trigger form's default weights (FRUITS_WEIGHTS): main() decides as make run does.
    weights: str = "imagenet"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"


def stack_env(settings: StackSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every component (and of the emulator)."""
    home = Path(settings.home)
    env = dict(os.environ if base is None else base)
    env.pop("AWS_PROFILE", None)
    python = sys.executable
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(settings.parallelism),
            # Unpaused: a run triggered from the UI runs at once instead of sitting queued.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Log servers are skipped (--skip-serve-logs): they bind every interface.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
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
                    "extra": {
                        "region_name": settings.region,
                        "endpoint_url": settings.emulator_url,
                    },
                }
            ),
            "AIRFLOW_CONN_SPARK_LOCAL": '{"conn_type": "spark", "host": "local[*]"}',
            "PYSPARK_PYTHON": python,
            "PYSPARK_DRIVER_PYTHON": python,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # A deferred task whose trigger fires within seconds fails its resumed try
            # (the scheduler has not drained the defer-exit event yet: apache/airflow#72716,
            # open in 3.3.x). Real EMR takes ~10 min to start; the emulator takes 15 s here.
            "FRUITS_EMU_START_S": "5",
            "FRUITS_EMU_BOOTSTRAP_S": "10",
            "FRUITS_BUCKET": settings.bucket,
            # Nothing installs on an emulated node: no wheelhouse to download from PyPI.
            "FRUITS_WHEELHOUSE": "false",
            # The Serverless DAG's packed Python may be this machine's (emulator only).
            "FRUITS_SERVERLESS_LOCAL_PYTHON": "true",
            "FRUITS_REGION": settings.region,
            "FRUITS_DATA_DIR": str(settings.data_dir),
            "FRUITS_RESULTS_DIR": str(settings.results_dir),
            "FRUITS_WEIGHTS": settings.weights,
            # Fake keys for the emulator (it accepts any); never real AWS from this stack.
            "AWS_DEFAULT_REGION": settings.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(settings.extra_env)
    return env


def _bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def http_status(url: str, *, token: str = "") -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


class AirflowStack:
    """The emulator + four Airflow components; ``start()``, ``stop()`` (by PID)."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = Path(settings.home)
        self.env = stack_env(settings)
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.home / f"{name}.log").open("wb")
        # A new session = a process group of its own, stopped as a whole.
        self.procs[name] = subprocess.Popen(
            argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.home,
        )
        log.close()

    def logs_tail(self, chars: int = 4000) -> str:
        parts = []
        for name in ("emulator", *COMPONENTS):
            path = self.home / f"{name}.log"
            if path.exists():
                parts.append(f"----- {name} -----\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.logs_tail()}")

    def wait_until(self, what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            result = check()
            if result:
                return result
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs_tail()}")

    def start(self) -> AirflowStack:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        s.results_dir.mkdir(parents=True, exist_ok=True)
        self._start(
            "emulator",
            [
                sys.executable,
                "-m",
                "emr_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(s.emulator_port),
                "--data-dir",
                str(s.emulator_dir),
                "--bucket",
                s.bucket,
            ],
        )
        migrate = subprocess.run(
            [_bin("airflow"), "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        airflow = _bin("airflow")
        self._start(
            "api-server",
            [airflow, "api-server", "-H", "127.0.0.1", "-p", str(s.api_port), "-w", "1"],
        )
        self._start("scheduler", [airflow, "scheduler", "--skip-serve-logs"])
        self._start("dag-processor", [airflow, "dag-processor"])
        self._start("triggerer", [airflow, "triggerer", "--skip-serve-logs"])
        self.wait_until(
            "the EMR emulator",
            lambda: http_status(f"{s.emulator_url}/_emr_emulator/clusters") == 200,
            STARTUP_TIMEOUT_S,
        )
        self.wait_until(
            "the api-server",
            lambda: http_status(f"{s.api_url}/api/v2/version") == 200,
            STARTUP_TIMEOUT_S,
        )
        return self

    def stop(self) -> list[str]:
        """Stop every process started here (see :func:`stop_processes`)."""
        return stop_processes(self.procs)


def stop_processes(procs: dict[str, subprocess.Popen]) -> list[str]:
    """SIGTERM each process group, wait, SIGKILL what is left (children that left the group
    by PID); return descriptions of survivors (empty when all are gone)."""
    try:
        import psutil  # noqa: PLC0415 (optional dependency)
    except ImportError:  # a runtime-only environment: process groups only
        psutil = None
    tree: list[Any] = []
    if psutil is not None:
        for proc in procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(proc.pid)
                tree += [parent, *parent.children(recursive=True)]
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    alive: list[Any] = []
    if psutil is not None:
        _, alive = psutil.wait_procs(tree, timeout=20)
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if psutil is not None:
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        _, alive = psutil.wait_procs(alive, timeout=10)
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return [f"{p.pid} {p.name()}" for p in alive if p.is_running()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the UI / REST API port")
    parser.add_argument("--emulator-port", type=int, default=5000)
    parser.add_argument(
        "--home",
        type=Path,
        default=REPO_ROOT / ".airflow-ui",
        help="AIRFLOW_HOME of this stack (SQLite DB, logs)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=weights_offline(),
        help="never try to download the ImageNet weights (also FRUITS_OFFLINE=1)",
    )
    args = parser.parse_args(argv)
    # The trigger form's default weights, decided as make run decides (validate_params
    # checks whatever a run then asks for).
    decision = decide_weights(None, download=None if args.offline else download_imagenet_weights)
    print(f"weights: the trigger form defaults to weights={decision.value}: {decision.reason}")
    stack = AirflowStack(
        StackSettings(
            home=args.home.resolve(),
            api_port=args.port,
            emulator_port=args.emulator_port,
            weights=decision.value,
        )
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"starting the EMR emulator and Airflow in {stack.home} (logs: <home>/*.log) ...")
        stack.start()
        print(f"\nAirflow UI: {stack.settings.api_url}  (no login: loopback only)")
        print(f"AWS (EMR emulator): {stack.settings.emulator_url}")
        print(
            "The project's DAGs start unpaused (a triggered run runs at once); each run's "
            f"report is its Report tab, every run and cost at {stack.settings.api_url}/fruits/runs"
        )
        print("Ctrl-C stops every process started here.", flush=True)
        while not stop.wait(2):
            stack.check_alive()
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        survivors = stack.stop()
        print(
            f"stopped {len(stack.procs)} processes" + (f"; left: {survivors}" if survivors else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
