"""A WSGI layer in front of moto's app: EMR calls as EMR answers them.

EMR speaks the JSON protocol (``X-Amz-Target: ElasticMapReduce.<Action>``). This layer
reads those requests, lets moto do what it does well (validation, ids, the model), and
holds the response until the engine has corrected moto's instant state changes:

* ``RunJobFlow`` — the request is kept (moto 5.2.5 drops ``AutoTerminationPolicy``) and
  the cluster starts over at ``STARTING``; a ``SecurityConfiguration`` that does not exist
  is refused, and a network the v2 service policy cannot use ends the cluster
  (:mod:`emr_emulator.network`);
* ``AddJobFlowSteps`` — new steps are ``PENDING``; a terminating or ended cluster refuses
  them with EMR's ValidationException;
* ``TerminateJobFlows`` — the cluster goes ``TERMINATING`` first (the engine stops a
  running job, then ends it);
* ``CancelSteps``, ``GetAutoTerminationPolicy``, ``PutAutoTerminationPolicy``,
  ``RemoveAutoTerminationPolicy`` — answered here (moto lacks them).

With IAM enforced, every signed request is first evaluated by
:class:`emr_emulator.iam.IamEnforcer` (denied: AWS's AccessDenied, nothing reaches moto).
EMR Serverless requests (REST-JSON) go to :mod:`emr_emulator.serverless_api`. Every other
request (S3, IAM, STS, the rest of EMR) goes to moto untouched. ``GET /_emr_emulator/clusters``
returns the engine's view (states with times, steps; Serverless applications and job runs).
Responses of moto's model are also given the fields EMR has and moto leaves out
(``StateChangeReason.Code``, a step's ``FailureDetails``) by :func:`install_model_patches`.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from moto.emr import models
from moto.emr.models import emr_backends

from emr_emulator.network import request_account_and_region, v2_network_failure
from emr_emulator.serverless_api import ServerlessApi, is_serverless

if TYPE_CHECKING:
    from emr_emulator.engine import EmrEngine
    from emr_emulator.iam import IamEnforcer

TARGET_PREFIX = "ElasticMapReduce."
STATUS_PATH = "/_emr_emulator/clusters"

StartResponse = Callable[..., Any]


def install_model_patches() -> Callable[[], None]:
    """Add EMR's ``StateChangeReason.Code`` and ``FailureDetails`` to moto's status dicts.

    Only objects the engine marked (``emu_reason`` / ``emu_failure``) change. Returns a
    function that restores moto's classes.
    """

    originals = {cls: cls.status for cls in (models.Cluster, models.Step)}

    def cluster_status(self: Any) -> dict[str, Any]:
        status = originals[models.Cluster].fget(self)
        reason = getattr(self, "emu_reason", None)
        if reason:
            status["StateChangeReason"] = dict(reason)
        return status

    def step_status(self: Any) -> dict[str, Any]:
        status = originals[models.Step].fget(self)
        failure = getattr(self, "emu_failure", None)
        if failure and self.state == "FAILED":
            status["FailureDetails"] = dict(failure)
        return status

    models.Cluster.status = property(cluster_status)
    models.Step.status = property(step_status)

    def restore() -> None:
        for cls, prop in originals.items():
            cls.status = prop

    return restore


def _find_cluster(cluster_id: str) -> Any | None:

    for account in list(emr_backends.keys()):
        for backend in list(emr_backends[account].values()):
            if cluster_id in backend.clusters:
                return backend.clusters[cluster_id]
    return None


def _json_response(
    start_response: StartResponse, body: dict[str, Any], status: str = "200 OK"
) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def _error(start_response: StartResponse, code: str, message: str) -> list[bytes]:
    return _json_response(
        start_response, {"__type": code, "message": message}, status="400 Bad Request"
    )


class EmrApiLayer:
    """The WSGI app: moto's ``app`` with EMR's life cycle handled by ``engine``."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], engine: EmrEngine, iam: IamEnforcer | None = None
    ) -> None:
        self.app = app
        self.engine = engine
        self.iam = iam  # every signed request is evaluated by it first (enforce_iam)
        self.ready = threading.Event()  # set once the emulator's own set-up is done
        self.serverless = ServerlessApi(engine.serverless, self._call_moto)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == STATUS_PATH and environ.get("REQUEST_METHOD") == "GET":
            if not self.ready.is_set():  # health checks wait for the buckets too
                return _json_response(start_response, {"ready": False}, "503 Service Unavailable")
            return _json_response(
                start_response,
                {
                    "clusters": self.engine.snapshot(),
                    "serverless": self.engine.serverless.snapshot(),
                },
            )
        if self.iam is not None:
            denied = self.iam(environ, lambda: self._read_body(environ), start_response)
            if denied is not None:
                return denied
        if is_serverless(environ):
            raw = self._read_body(environ)
            with self.engine.lock:
                return self.serverless(environ, start_response, raw)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return self.app(environ, start_response)
        action = target[len(TARGET_PREFIX) :]
        raw = self._read_body(environ)
        try:
            request = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self.app(environ, start_response)
        handler = getattr(self, f"_{action}", None)
        with self.engine.lock:  # moto's change and the engine's correction are one step
            if handler is None:
                return self._call_moto(environ, start_response)[0]
            return handler(request, environ, start_response)

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        """The request body, left readable again for moto."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        return raw

    def _call_moto(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> tuple[list[bytes], str]:
        body, status, headers = self._call_moto_held(environ)
        start_response(status, headers)
        return body, status

    def _call_moto_held(self, environ: dict[str, Any]) -> tuple[list[bytes], str, list[Any]]:
        """moto's answer (body, status, headers), not yet started as the response."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        return [body], captured["status"], captured["headers"]

    @staticmethod
    def _ok(status: str) -> bool:
        return status.startswith("2")

    # ---------------------------------------------------------------- EMR actions

    def _RunJobFlow(self, request: dict[str, Any], environ: Any, start: StartResponse) -> Any:
        failure = v2_network_failure(request, *request_account_and_region(environ))
        body, status, headers = self._call_moto_held(environ)
        if self._ok(status):
            cluster = _find_cluster(json.loads(body[0])["JobFlowId"])
            if cluster is not None:
                name = request.get("SecurityConfiguration")
                if name and name not in cluster.emr_backend.security_configurations:
                    # EMR API Reference, RunJobFlow: SecurityConfiguration is "the name of a
                    # security configuration to apply to the cluster", one made by
                    # CreateSecurityConfiguration (EMR Management Guide, "Use security
                    # configurations"); an unknown name is refused. The wording is as quoted in
                    # hashicorp/terraform#13620 (AWS does not publish it).
                    del cluster.emr_backend.clusters[cluster.id]
                    return _error(
                        start,
                        "ValidationException",
                        f"Security configuration with name '{name}' does not exist.",
                    )
                self.engine.register(cluster, request, start_failure=failure)
        start(status, headers)
        return body

    def _AddJobFlowSteps(self, request: dict[str, Any], environ: Any, start: StartResponse) -> Any:
        cluster = _find_cluster(str(request.get("JobFlowId", "")))
        # EMR Management Guide, "Understanding the cluster lifecycle": steps are added to a
        # running or waiting cluster; a terminating or ended one cannot be modified.
        if cluster is not None and cluster.state in (
            "TERMINATING",
            "TERMINATED",
            "TERMINATED_WITH_ERRORS",
        ):
            return _error(
                start,
                "ValidationException",
                "A job flow that is shutting down, terminated, or finished may not be modified.",
            )
        previous = cluster.state if cluster is not None else ""
        body, status = self._call_moto(environ, start)
        if cluster is not None and self._ok(status):
            step_ids = json.loads(body[0]).get("StepIds", [])
            self.engine.steps_added(cluster.id, step_ids, previous)
        return body

    def _TerminateJobFlows(
        self, request: dict[str, Any], environ: Any, start: StartResponse
    ) -> Any:
        clusters = [_find_cluster(str(i)) for i in request.get("JobFlowIds") or []]
        previous = {c.id: (c.state, c.end_datetime) for c in clusters if c is not None}
        body, status = self._call_moto(environ, start)
        if self._ok(status):
            for cluster_id, before in previous.items():
                self.engine.request_termination(cluster_id, before)
        return body

    def _CancelSteps(self, request: dict[str, Any], environ: Any, start: StartResponse) -> Any:
        cluster_id = str(request.get("ClusterId", ""))
        if _find_cluster(cluster_id) is None:
            return _error(
                start, "InvalidRequestException", f"Cluster id '{cluster_id}' is not valid."
            )
        infos = []
        for step_id in request.get("StepIds") or []:
            result, reason = self.engine.request_cancel(cluster_id, str(step_id))
            infos.append({"StepId": step_id, "Status": result, "Reason": reason})
        return _json_response(start, {"CancelStepsInfoList": infos})

    def _policy_run(self, request: dict[str, Any], start: StartResponse) -> Any:
        run = self.engine.runs.get(str(request.get("ClusterId", "")))
        if run is None:
            return None, _error(
                start,
                "InvalidRequestException",
                f"Cluster id '{request.get('ClusterId')}' is not valid.",
            )
        return run, None

    def _GetAutoTerminationPolicy(
        self, request: dict[str, Any], environ: Any, start: StartResponse
    ) -> Any:
        run, error = self._policy_run(request, start)
        if error:
            return error
        policy = run.request.get("AutoTerminationPolicy")
        return _json_response(start, {"AutoTerminationPolicy": policy} if policy else {})

    def _PutAutoTerminationPolicy(
        self, request: dict[str, Any], environ: Any, start: StartResponse
    ) -> Any:
        run, error = self._policy_run(request, start)
        if error:
            return error
        run.request["AutoTerminationPolicy"] = dict(request.get("AutoTerminationPolicy") or {})
        return _json_response(start, {})

    def _RemoveAutoTerminationPolicy(
        self, request: dict[str, Any], environ: Any, start: StartResponse
    ) -> Any:
        run, error = self._policy_run(request, start)
        if error:
            return error
        run.request.pop("AutoTerminationPolicy", None)
        return _json_response(start, {})
