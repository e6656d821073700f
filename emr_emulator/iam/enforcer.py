"""The one place every request passes: who is calling, and may they (as LocalStack's ENFORCE_IAM).

The caller is the access key id of the request's SigV4 credential: an IAM user's key or an
STS session (moto's own ``moto.iam.access_control.create_access_key`` finds them), or a
session the emulator opened for a job (:meth:`IamEnforcer.role_session`: a cluster's
instance-profile role, a Serverless job's runtime role). Any other key is the account's
root, which IAM policies do not restrict: the emulator's own set-up and tests use such keys.

Every check of :func:`emr_emulator.iam.requests.checks_for` is evaluated against the caller's
identity-based policies (:mod:`emr_emulator.iam.evaluate`); the first denied one answers
the request with the service's own error shape and AWS's wording.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from emr_emulator.iam.evaluate import Decision, evaluate
from emr_emulator.iam.requests import (
    Check,
    Lookups,
    Request,
    checks_for,
    credential_scope,
    service_linked_role_arn,
)

log = logging.getLogger("emr_emulator.iam")

ACCOUNT = "123456789012"  # moto's default account: the emulator serves one account
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Caller:
    arn: str
    policies: tuple[dict[str, Any], ...]


def _iam_backend(account: str = ACCOUNT) -> Any:
    from moto.iam.models import iam_backends  # noqa: PLC0415 (lazy: loads moto and boto3)

    return iam_backends[account]["global"]


def _document(policy: Any) -> dict[str, Any]:
    """A policy document from what moto keeps (a JSON string, or a managed policy object)."""
    from moto.iam.models import Policy  # noqa: PLC0415 (lazy: loads moto and boto3)

    if isinstance(policy, Policy):
        text = next(v.document for v in policy.versions if v.is_default)
    elif isinstance(policy, dict):
        text = policy.get("policy_document", "{}")
    else:
        text = policy
    return json.loads(urllib.parse.unquote(text)) if isinstance(text, str) else dict(text)


def role_policies(role_name: str, account: str = ACCOUNT) -> tuple[dict[str, Any], ...]:
    """The role's inline and attached policy documents (empty if the role does not exist)."""
    backend = _iam_backend(account)
    try:
        names = backend.list_role_policies(role_name)
        inline = [backend.get_role_policy(role_name, n)[1] for n in names]
        attached, _ = backend.list_attached_role_policies(role_name)
    except Exception:  # moto's NoSuchEntity: a missing role has no permission
        return ()
    return tuple(_document(p) for p in [*inline, *attached])


def _moto_lookups(account: str = ACCOUNT) -> Lookups:
    def cluster_tags(cluster_id: str) -> dict[str, str] | None:
        from moto.emr.models import emr_backends  # noqa: PLC0415 (lazy: loads moto and boto3)

        for backend in list(emr_backends[account].values()):
            if cluster_id in backend.clusters:
                tags = backend.clusters[cluster_id].tags  # moto: [{"Key": .., "Value": ..}]
                return {t["Key"]: t["Value"] for t in tags}
        return None

    def application_tags(app_id: str) -> dict[str, str] | None:
        from moto.emrserverless.models import emrserverless_backends  # noqa: PLC0415 (lazy: loads moto and boto3)

        for backend in list(emrserverless_backends[account].values()):
            if app_id in backend.applications:
                return dict(backend.applications[app_id].tags or {})
        return None

    def job_run_tags(app_id: str, run_id: str) -> dict[str, str] | None:
        from moto.emrserverless.models import emrserverless_backends  # noqa: PLC0415 (lazy: loads moto and boto3)

        for backend in list(emrserverless_backends[account].values()):
            for run in backend.job_runs.get(app_id, []):
                if run.id == run_id:
                    return dict(run.tags or {})
        return None

    def profile_roles(profile: str) -> list[str]:
        if not profile:
            return []
        try:
            found = _iam_backend(account).get_instance_profile(profile)
        except Exception:  # a missing profile: EMR refuses the request itself
            return []
        return [role.arn for role in found.roles]

    def role_arn(name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        try:
            return _iam_backend(account).get_role(name_or_arn).arn
        except Exception:
            return f"arn:aws:iam::{account}:role/{name_or_arn}"

    return Lookups(cluster_tags, application_tags, job_run_tags, profile_roles, role_arn)


def denial_message(caller: str, check: Check, decision: Decision, *, quote: bool = False) -> str:
    """AWS's wording ("IAM User Guide: Troubleshoot access denied error messages")."""
    message = f"User: {caller} is not authorized to perform: {check.action}"
    if check.resource != "*":
        message += (
            f' on resource: "{check.resource}"' if quote else f" on resource: {check.resource}"
        )
    if decision is Decision.EXPLICIT_DENY:
        return message + " with an explicit deny in an identity-based policy"
    return message + f" because no identity-based policy allows the {check.action} action"


def _respond(start: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes) -> Any:
    start(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def error_response(service: str, message: str, start: StartResponse) -> list[bytes]:
    """The service's own error shape for an access denial (AWS's protocols)."""
    if service == "emr-serverless":  # REST-JSON: 403, the type in X-Amzn-ErrorType
        body = json.dumps({"message": message}).encode()
        return _respond(
            start,
            "403 Forbidden",
            [("Content-Type", "application/json"), ("X-Amzn-ErrorType", "AccessDeniedException")],
            body,
        )
    if service == "s3":  # REST-XML: 403 <Error><Code>AccessDenied</Code>
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml(message)}</Message><RequestId>emulated</RequestId></Error>"
        ).encode()
        return _respond(start, "403 Forbidden", [("Content-Type", "application/xml")], body)
    if service == "ec2":  # EC2's query protocol: UnauthorizedOperation
        body = (
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
            f"<Message>You are not authorized to perform this operation. {_xml(message)}"
            "</Message></Error></Errors><RequestID>emulated</RequestID></Response>"
        ).encode()
        return _respond(start, "403 Forbidden", [("Content-Type", "text/xml")], body)
    if service in ("iam", "sts"):  # query protocol: <ErrorResponse><Error><Code>AccessDenied
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            f"<Message>{_xml(message)}</Message></Error><RequestId>emulated</RequestId>"
            "</ErrorResponse>"
        ).encode()
        return _respond(start, "403 Forbidden", [("Content-Type", "text/xml")], body)
    # JSON protocol (EMR, Service Quotas): 400 with __type AccessDeniedException
    body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
    return _respond(
        start, "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")], body
    )


def _raw_path(environ: dict[str, Any]) -> str:
    """The path as the client sent it (werkzeug keeps it in RAW_URI / REQUEST_URI)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0]
    return urllib.parse.quote(environ.get("PATH_INFO", "/"))


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class IamEnforcer:
    """Evaluates each request against its caller's identity-based policies."""

    def __init__(self, account: str = ACCOUNT) -> None:
        self.account = account
        self.lookups = _moto_lookups(account)
        self._sessions: dict[str, str] = {}  # access key id -> role ARN (job sessions)
        self._lock = threading.Lock()
        self.denied: list[str] = []  # every denial message, for tests and the status view
        self.checked = 0  # requests evaluated for an IAM identity (root's are not)

    # ---------------------------------------------------------------- callers

    def caller(self, access_key: str, headers: dict[str, str]) -> Caller | None:
        """The IAM identity behind ``access_key``; None for the account's root."""
        with self._lock:
            session_role = self._sessions.get(access_key)
        if session_role is not None:
            name = session_role.rpartition("/")[2]
            return Caller(
                f"arn:aws:sts::{self.account}:assumed-role/{name}/emr-emulator-job",
                role_policies(name, self.account),
            )
        from moto.iam.access_control import CreateAccessKeyFailure, create_access_key  # noqa: PLC0415 (lazy: loads moto and boto3)

        token = headers.get("x-amz-security-token")
        moto_headers = {"X-Amz-Security-Token": token} if token else {}
        try:
            key = create_access_key(self.account, "aws", access_key, moto_headers)
        except (CreateAccessKeyFailure, KeyError, StopIteration):
            return None
        return Caller(key.arn, tuple(_document(p) for p in key.collect_policies()))

    def role_session(self, role: str) -> str:
        """An access key id acting as ``role`` (a role name, ARN or instance-profile name)."""
        arns = self.lookups.profile_roles(role) if not role.startswith("arn:") else []
        arn = arns[0] if arns else self.lookups.role_arn(role)
        key = "ASIAEMU" + secrets.token_hex(6).upper()
        with self._lock:
            self._sessions[key] = arn
        return key

    # ---------------------------------------------------------------- decisions

    def decide(self, caller: Caller, checks: Iterable[Check]) -> tuple[Check, Decision] | None:
        """The first check ``caller`` fails, with its decision; None if all are allowed."""
        for check in checks:
            decision = evaluate(caller.policies, check.action, check.resource, check.context)
            if decision is not Decision.ALLOW:
                return check, decision
        return None

    def __call__(
        self, environ: dict[str, Any], read_body: Callable[[], bytes], start: StartResponse
    ) -> list[bytes] | None:
        """None if the request may go on; else the denial response (already started).

        ``read_body`` returns the body and leaves it readable again; S3's bodies are read only
        for ``DeleteObjects`` (the keys), never for uploads."""
        scope = credential_scope(environ)
        if scope is None:
            return None  # unsigned (health checks, moto's own API): nothing to evaluate
        access_key, region, service = scope
        method = environ.get("REQUEST_METHOD", "GET")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        wants_body = service != "s3" or (method == "POST" and "delete" in query)
        raw = read_body() if wants_body else b""
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Request(
            service=service,
            region=region,
            access_key=access_key,
            method=method,
            path=_raw_path(environ),
            query=query,
            headers=headers,
            body=raw,
            account=self.account,
        )
        caller = self.caller(access_key, headers)
        checks = checks_for(request, self.lookups)
        if caller is not None:
            self.checked += 1
            failed = self.decide(caller, checks)
            if failed is not None:
                check, decision = failed
                message = denial_message(caller.arn, check, decision, quote=service == "s3")
                self.denied.append(message)
                log.info("IAM: %s", message)
                return error_response(service, message, start)
        if any(c.action == "elasticmapreduce:RunJobFlow" for c in checks):
            return self._emr_cleanup_role(caller, service, start)
        return None

    def _emr_cleanup_role(
        self, caller: Caller | None, service: str, start: StartResponse
    ) -> list[bytes] | None:
        """EMR creates AWSServiceRoleForEMRCleanup at an account's first cluster, with the
        caller's iam:CreateServiceLinkedRole permission (EMR Management Guide, "Using
        service-linked roles for Amazon EMR for cleanup": "If the service-linked role doesn't
        exist, Amazon EMR creates it automatically during cluster creation", and "Creating a
        service-linked role for Amazon EMR": the IAM entity needs that permission)."""
        backend = _iam_backend(self.account)
        name = "AWSServiceRoleForEMRCleanup"
        if any(role.name == name for role in backend.roles.values()):
            return None
        aws_service = "elasticmapreduce.amazonaws.com"
        check = Check(
            "iam:CreateServiceLinkedRole",
            service_linked_role_arn(self.account, aws_service),
            {"iam:AWSServiceName": aws_service},
        )
        if caller is not None:
            failed = self.decide(caller, [check])
            if failed is not None:
                message = denial_message(caller.arn, check, failed[1])
                self.denied.append(message)
                return error_response(service, message, start)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": [aws_service]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        backend.create_role(
            role_name=name,
            assume_role_policy_document=json.dumps(trust),
            path=f"/aws-service-role/{aws_service}/",
            permissions_boundary=None,
            description="EMR cleanup (created by the emulator at the first RunJobFlow)",
            tags=[],
            max_session_duration="3600",
            linked_service=aws_service,
        )
        return None
