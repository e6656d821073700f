"""The emulator as one object: moto's HTTP server on loopback + the EMR engine.

    with Emulator(EmulatorSettings(data_dir=tmp)) as emu:
        boto3.client("emr", endpoint_url=emu.endpoint_url, ...)

moto's backends live in this process (like ``moto.server.ThreadedMotoServer``, whose
werkzeug set-up this follows), so the engine moves their state directly.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emr_emulator.iam import IamEnforcer

log = logging.getLogger("emr_emulator")

LOG_DELAY_ENV = "FRUITS_EMU_LOG_DELAY_S"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass
class EmulatorSettings:
    """How the emulated EMR behaves. Durations are seconds; defaults suit a demo.

    ``idle_scale`` multiplies ``AutoTerminationPolicy.IdleTimeout`` (EMR's minimum is 60 s;
    tests use e.g. 0.05 to see the cost backstop act in seconds) and EMR Serverless's
    ``autoStopConfiguration.idleTimeoutMinutes``; ``timeout_scale`` multiplies a job run's
    ``executionTimeoutMinutes`` (botocore: 0 to 1,000,000; 0 = never) and an application's
    ``queueTimeoutMinutes``. ``log_delay_s``
    (``FRUITS_EMU_LOG_DELAY_S``) is how long after a step ends its logs reach S3.
    ``local_cores`` (``FRUITS_EMU_CORES``) is the local Spark's task slots for a cluster step
    that YARN grants every planned executor; a partial grant gets its share
    (:meth:`emr_emulator.yarn.Placement.local_cores`).
    """

    data_dir: Path = field(default_factory=lambda: Path(".emr-emulator"))
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    start_s: float = field(default_factory=lambda: _env_float("FRUITS_EMU_START_S", 2.0))
    bootstrap_s: float = field(default_factory=lambda: _env_float("FRUITS_EMU_BOOTSTRAP_S", 2.0))
    terminate_s: float = field(default_factory=lambda: _env_float("FRUITS_EMU_TERMINATE_S", 1.0))
    log_delay_s: float = field(default_factory=lambda: _env_float(LOG_DELAY_ENV, 1.0))
    idle_scale: float = field(default_factory=lambda: _env_float("FRUITS_EMU_IDLE_SCALE", 1.0))
    local_cores: int = field(default_factory=lambda: int(_env_float("FRUITS_EMU_CORES", 2)))
    python: str = field(default_factory=lambda: os.environ.get("PYSPARK_PYTHON") or sys.executable)
    # EMR Serverless: seconds in CREATING, in each queue state of a job run (SUBMITTED,
    # PENDING, SCHEDULED); STARTING lasts start_s and STOPPING terminate_s.
    app_create_s: float = field(default_factory=lambda: _env_float("FRUITS_EMU_APP_CREATE_S", 1.0))
    job_queue_s: float = field(default_factory=lambda: _env_float("FRUITS_EMU_JOB_QUEUE_S", 0.5))
    timeout_scale: float = field(
        default_factory=lambda: _env_float("FRUITS_EMU_TIMEOUT_SCALE", 1.0)
    )
    # An environment archive built for this machine is really used (FRUITS_EMU_USE_ARCHIVES=0:
    # never; the job then runs with ``python``, as cluster steps do).
    use_archives: bool = field(
        default_factory=lambda: os.environ.get("FRUITS_EMU_USE_ARCHIVES", "1") != "0"
    )
    # IAM enforced (FRUITS_EMU_ENFORCE_IAM=1): requests signed with an IAM user's keys are
    # evaluated against its policies, a job's S3 traffic against its role (emr_emulator.iam).
    enforce_iam: bool = field(
        default_factory=lambda: os.environ.get("FRUITS_EMU_ENFORCE_IAM", "0") == "1"
    )
    tick_s: float = 0.2

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get(
            "FRUITS_EMU_ALLOW_NON_LOOPBACK"
        ):
            raise ValueError(
                f"host {self.host!r}: the emulator listens on loopback only "
                "(set FRUITS_EMU_ALLOW_NON_LOOPBACK=1 inside a container network)"
            )
        for name in (
            "start_s",
            "bootstrap_s",
            "terminate_s",
            "log_delay_s",
            "tick_s",
            "app_create_s",
            "job_queue_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.idle_scale <= 0 or self.timeout_scale <= 0 or self.local_cores < 1:
            raise ValueError("idle_scale and timeout_scale must be > 0, local_cores >= 1")


class Emulator:
    """Start/stop the emulated AWS endpoint (``endpoint_url``) and its EMR engine."""

    def __init__(
        self, settings: EmulatorSettings | None = None, *, buckets: tuple[str, ...] = ()
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self.buckets = buckets  # created at start, before the status endpoint says ready
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._restore_models: Any = None
        self.engine: Any = None
        self.iam: Any = None  # the IamEnforcer when settings.enforce_iam

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def s3_client(self) -> Any:
        """An S3 client of this emulator (fake keys: moto accepts any)."""
        return self.client("s3")

    def client(self, service: str, access_key: str = "testing", secret: str = "testing") -> Any:
        """A boto3 client of this emulator for ``service``; the default keys are the account's
        root (moto accepts any key; with IAM enforced, an IAM user's keys are checked)."""
        import boto3  # noqa: PLC0415 (lazy: loads boto3 and botocore)

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
        )

    def start(self) -> Emulator:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 (lazy: loads moto and boto3)
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415 (lazy: loads werkzeug)

        from emr_emulator.api import EmrApiLayer, install_model_patches  # noqa: PLC0415 (lazy: loads moto and boto3)
        from emr_emulator.engine import EmrEngine  # noqa: PLC0415 (lazy: loads moto and boto3)

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = EmrEngine(self.settings, self.s3_client)
        self.iam = None
        if self.settings.enforce_iam:
            self.iam = IamEnforcer()
            iam = self.iam
            self.engine.job_s3_factory = lambda role: self.client("s3", iam.role_session(role))
        app = EmrApiLayer(DomainDispatcherApplication(create_backend_app), self.engine, self.iam)
        self._server = make_server(
            self.settings.host,
            self.settings.port,
            app,
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._restore_models = install_model_patches()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="emr-emulator-http", daemon=True
        )
        self._thread.start()
        self.engine.start()
        if self.buckets:
            from emr_emulator.account import prepare_account  # noqa: PLC0415 (lazy: loads botocore)

            region = os.environ.get("AWS_DEFAULT_REGION", "eu-west-1")
            for bucket in self.buckets:
                prepare_account(self.s3_client(), self.client("iam"), bucket, region)
        app.ready.set()
        log.info("EMR emulator on %s (data in %s)", self.endpoint_url, self.settings.data_dir)
        return self

    def stop(self) -> None:
        """Stop the engine (a running job is killed), then the HTTP server."""
        if self.engine is not None:
            self.engine.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._restore_models is not None:
            self._restore_models()
            self._restore_models = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
