"""The EMR Serverless REST routes in front of moto: its instant state changes corrected.

EMR Serverless speaks REST-JSON (``POST /applications``, ``/applications/{id}/start``, ...);
a request is recognised by its SigV4 credential scope (``.../emr-serverless/aws4_request``),
since other services (AppConfig) also have an ``/applications`` path. moto does the
validation, ids and model; :class:`emr_emulator.serverless.ServerlessEngine` then puts the
application or job run where AWS would have it, or the request is refused (HTTP 400,
``ValidationException``) where AWS refuses it and moto does not:

* ``CreateApplication`` -> ``CREATING``; ``UpdateApplication`` keeps ``architecture``; both
  refuse a ``schedulerConfiguration`` AWS refuses (ranges, releases before emr-7.0.0);
* ``StartApplication`` -> ``STARTING`` (refused while ``CREATING``/``STOPPING``);
* ``StopApplication`` -> ``STOPPING`` (refused unless ``STARTING``/``STARTED``, and while a
  job run is active);
* ``DeleteApplication`` -> ``TERMINATED`` (moto refuses it unless ``CREATED``/``STOPPED``);
* ``StartJobRun`` -> ``SUBMITTED`` (refused when the application cannot auto-start, or
  when its driver or executors are sized outside EMR Serverless's worker sizes);
* ``CancelJobRun`` -> ``CANCELLING``/``CANCELLED`` (refused for an ended run).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moto.emrserverless.models import emrserverless_backends

from emr_emulator.serverless import ServerlessRefused

if TYPE_CHECKING:
    from emr_emulator.serverless import ServerlessEngine

SCOPE = "/emr-serverless/aws4_request"
_APP = r"/applications/(?P<app>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/applications/?$"), "create_application"),
    ("PATCH", re.compile(rf"^{_APP}/?$"), "update_application"),
    ("DELETE", re.compile(rf"^{_APP}/?$"), "delete_application"),
    ("POST", re.compile(rf"^{_APP}/start/?$"), "start_application"),
    ("POST", re.compile(rf"^{_APP}/stop/?$"), "stop_application"),
    ("POST", re.compile(rf"^{_APP}/jobruns/?$"), "start_job_run"),
    ("DELETE", re.compile(rf"^{_APP}/jobruns/(?P<run>[^/]+)/?$"), "cancel_job_run"),
]

Env = dict[str, Any]
Start = Callable[..., Any]
Req = dict[str, Any]
CallMoto = Callable[[dict[str, Any], Callable[..., Any]], tuple[list[bytes], str]]


def is_serverless(environ: dict[str, Any]) -> bool:
    return SCOPE in environ.get("HTTP_AUTHORIZATION", "") or environ.get(
        "HTTP_HOST", ""
    ).startswith("emr-serverless.")


def _refuse(start_response: Callable[..., Any], message: str) -> list[bytes]:
    payload = json.dumps({"message": message}).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/json"),
            ("X-Amzn-ErrorType", "ValidationException"),
            ("Content-Length", str(len(payload))),
        ],
    )
    return [payload]


def _backend_app(app_id: str) -> Any | None:

    for account in list(emrserverless_backends.keys()):
        for backend in list(emrserverless_backends[account].values()):
            if app_id in backend.applications:
                return backend.applications[app_id]
    return None


def _backend_run(app_id: str, run_id: str) -> Any | None:

    for account in list(emrserverless_backends.keys()):
        for backend in list(emrserverless_backends[account].values()):
            for run in backend.job_runs.get(app_id, []):
                if run.id == run_id:
                    return run
    return None


class ServerlessApi:
    """Routes one EMR Serverless request (called under the engine's lock)."""

    def __init__(self, engine: ServerlessEngine, call_moto: CallMoto) -> None:
        self.engine = engine
        self.call_moto = call_moto

    def __call__(
        self, environ: dict[str, Any], start: Callable[..., Any], raw: bytes
    ) -> list[bytes]:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        for verb, pattern, name in ROUTES:
            match = pattern.match(path)
            if verb == method and match:
                try:
                    request = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    break
                try:
                    return getattr(self, name)(environ, start, request, **match.groupdict())
                except ServerlessRefused as exc:
                    return _refuse(start, str(exc))
        return self.call_moto(environ, start)[0]

    def _moto(self, environ: Env, start: Start) -> tuple[Any, bool]:
        body, status = self.call_moto(environ, start)
        return body, status.startswith("2")

    def create_application(self, environ: Env, start: Start, request: Req) -> list[bytes]:
        self.engine.check_application(request)
        body, ok = self._moto(environ, start)
        app = _backend_app(json.loads(body[0])["applicationId"]) if ok else None
        if app is not None:
            self.engine.application_created(app, request)
        return body

    def update_application(self, environ: Env, start: Start, request: Req, app: str) -> list[bytes]:
        self.engine.check_application(request, app)
        body, ok = self._moto(environ, start)
        if ok:
            self.engine.application_updated(app, request)
        return body

    def delete_application(self, environ: Env, start: Start, request: Req, app: str) -> list[bytes]:
        body, ok = self._moto(environ, start)
        if ok:
            self.engine.application_deleted(app)
        return body

    def _transition(
        self, environ: Env, start: Start, app_id: str, change: Callable[..., None]
    ) -> list[bytes]:
        model = _backend_app(app_id)
        previous = model.state if model is not None else ""
        change(app_id, previous, dry_run=True)  # refused before moto changes anything
        body, ok = self._moto(environ, start)
        if ok and model is not None:
            change(app_id, previous)
        return body

    def start_application(self, environ: Env, start: Start, request: Req, app: str) -> list[bytes]:
        return self._transition(environ, start, app, self.engine.start_application)

    def stop_application(self, environ: Env, start: Start, request: Req, app: str) -> list[bytes]:
        return self._transition(environ, start, app, self.engine.stop_application)

    def start_job_run(self, environ: Env, start: Start, request: Req, app: str) -> list[bytes]:
        self.engine.check_job_submission(app, request)
        body, ok = self._moto(environ, start)
        run = _backend_run(app, json.loads(body[0])["jobRunId"]) if ok else None
        if run is not None:
            self.engine.job_run_started(run)
        return body

    def cancel_job_run(
        self, environ: Env, start: Start, request: Req, app: str, run: str
    ) -> list[bytes]:
        model = _backend_run(app, run)
        previous = model.state if model is not None else ""
        self.engine.cancel_job_run(run, previous, dry_run=True)
        body, ok = self._moto(environ, start)
        if ok and model is not None:
            self.engine.cancel_job_run(run, previous)
        return body
