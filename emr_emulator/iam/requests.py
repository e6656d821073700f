"""One AWS request -> the authorization checks AWS makes for it: (action, resource ARN, context).

The operation is read with botocore's service models: the JSON protocol's ``X-Amz-Target``,
the query protocol's ``Action``, and for REST services (S3, EMR Serverless) the operation
whose ``requestUri``, method and required query/header members fit the request. The IAM
action, the resource ARN and the condition keys of each operation come from AWS's Service
Authorization Reference ("Actions, resources, and condition keys for ..." Amazon Elastic
MapReduce, Amazon EMR Serverless, Amazon S3, AWS IAM, Amazon EC2, AWS STS); the tables below
are the emulator's own (it never reads the project's) and cover what the pipelines call.
Anything else is checked as ``<service>:<Operation>`` on ``*``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from xml.etree import ElementTree

Env = Mapping[str, Any]


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a request."""

    action: str
    resource: str = "*"
    context: dict[str, str | list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """What the checks need to know of one request."""

    service: str  # the SigV4 credential scope's service (= the IAM prefix for these)
    region: str
    access_key: str
    method: str
    path: str  # as sent: still percent-encoded (an ARN in a path keeps its "/" as %2F)
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    account: str = "123456789012"

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")


def credential_scope(environ: Env) -> tuple[str, str, str] | None:
    """(access key id, region, service) of a SigV4-signed request (header or presigned URL)."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1), match.group(2), match.group(3)
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
    if len(credential) == 5:
        return credential[0], credential[2], credential[3]
    return None


# ------------------------------------------------------------------ botocore operation lookup


@lru_cache(maxsize=8)
def _service_model(name: str) -> Any:
    import botocore.session  # noqa: PLC0415 (lazy: loads botocore)

    return botocore.session.get_session().get_service_model(name)


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    query_literals: tuple[tuple[str, str | None], ...]
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]


def _compile(uri: str) -> tuple[re.Pattern[str], tuple[tuple[str, str | None], ...]]:
    path, _, query = uri.partition("?")
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            greedy = part.endswith("+}")
            name = part.strip("{}+")
            regex += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    literals = []
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        literals.append((key, value if sep else None))
    return re.compile(f"^{regex}/?$"), tuple(literals)


@lru_cache(maxsize=8)
def _routes(service: str) -> tuple[_Route, ...]:
    model = _service_model(service)
    routes = []
    for name in model.operation_names:
        op = model.operation_model(name)
        pattern, literals = _compile(op.http["requestUri"])
        query: list[str] = []
        headers: list[str] = []
        shape = op.input_shape
        for member in shape.required_members if shape is not None else []:
            where = shape.members[member].serialization
            if where.get("location") == "querystring":
                query.append(where["name"])
            elif where.get("location") == "header":
                headers.append(where["name"].lower())
        routes.append(
            _Route(name, op.http["method"], pattern, literals, tuple(query), tuple(headers))
        )
    return tuple(routes)


def rest_operation(service: str, request: Request) -> tuple[str, dict[str, str]] | None:
    """The REST operation (botocore name) of ``request`` and its path parameters."""
    best: tuple[int, str, dict[str, str]] | None = None
    for route in _routes(service):
        if route.method != request.method:
            continue
        match = route.pattern.match(request.path)
        if not match:
            continue
        if any(
            key not in request.query or (value is not None and request.param(key) != value)
            for key, value in route.query_literals
        ):
            continue
        if any(key not in request.query for key in route.required_query):
            continue
        if any(header not in request.headers for header in route.required_headers):
            continue
        score = len(route.query_literals) + len(route.required_query) + len(route.required_headers)
        if best is None or score > best[0]:
            params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            best = (score, route.operation, params)
    return (best[1], best[2]) if best else None


# ------------------------------------------------------------------ condition context helpers


def tag_context(prefix: str, tags: Mapping[str, str]) -> dict[str, str | list[str]]:
    """``aws:RequestTag/K`` (prefix ``aws:RequestTag``) or ``aws:ResourceTag/K`` keys."""
    return {f"{prefix}/{key}": value for key, value in tags.items()}


def request_tags(tags: Mapping[str, str]) -> dict[str, str | list[str]]:
    """``aws:RequestTag/*`` and ``aws:TagKeys`` of a request carrying ``tags``."""
    if not tags:
        return {}
    context = tag_context("aws:RequestTag", tags)
    context["aws:TagKeys"] = list(tags)
    return context


# ------------------------------------------------------------------ the services

Resolver = Callable[..., Any]


@dataclass
class Lookups:
    """What the checks read from the emulated account (moto's backends)."""

    cluster_tags: Callable[[str], dict[str, str] | None]
    application_tags: Callable[[str], dict[str, str] | None]
    job_run_tags: Callable[[str, str], dict[str, str] | None]
    profile_roles: Callable[[str], list[str]]
    role_arn: Callable[[str], str]


# EMR: cluster-scoped operations name the cluster in one of these members (SAR: resource type
# "cluster", ARN arn:${Partition}:elasticmapreduce:${Region}:${Account}:cluster/${ClusterId}).
_EMR_CLUSTER_MEMBERS = ("ClusterId", "JobFlowId", "ResourceId")


def emr_checks(request: Request, target: str, lookups: Lookups) -> list[Check]:
    operation = target.rpartition(".")[2]
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        body = {}
    action = f"elasticmapreduce:{operation}"
    tags = {t.get("Key", ""): t.get("Value", "") for t in body.get("Tags") or []}
    ids = [str(body[m]) for m in _EMR_CLUSTER_MEMBERS if m in body]
    ids += [str(i) for i in body.get("JobFlowIds") or []]
    if operation == "RunJobFlow":
        # SAR: RunJobFlow has no resource type (Resource "*"); condition keys aws:RequestTag/*
        # and aws:TagKeys; dependent action iam:PassRole (the service role is passed to
        # elasticmapreduce.amazonaws.com, the instance profile's role to ec2.amazonaws.com:
        # EMR Management Guide, AmazonEMRFullAccessPolicy_v2's PassRole statements).
        checks = [Check(action, "*", request_tags(tags))]
        if body.get("ServiceRole"):
            checks.append(_pass_role(lookups.role_arn(body["ServiceRole"]), "elasticmapreduce"))
        for role in lookups.profile_roles(str(body.get("JobFlowRole") or "")):
            checks.append(_pass_role(role, "ec2"))
        if body.get("AutoScalingRole"):
            checks.append(
                _pass_role(lookups.role_arn(body["AutoScalingRole"]), "application-autoscaling")
            )
        return checks
    if not ids:
        return [Check(action, "*", request_tags(tags))]
    checks = []
    for cluster_id in ids:
        arn = f"arn:aws:elasticmapreduce:{request.region}:{request.account}:cluster/{cluster_id}"
        context = tag_context("aws:ResourceTag", lookups.cluster_tags(cluster_id) or {})
        if operation in ("AddTags", "RemoveTags"):
            context.update(request_tags(tags) if tags else {})
            if operation == "RemoveTags":
                context["aws:TagKeys"] = [str(k) for k in body.get("TagKeys") or []]
        checks.append(Check(action, arn, context))
    return checks


def _pass_role(role_arn: str, service: str) -> Check:
    # IAM User Guide, "Granting a user permissions to pass a role to an AWS service":
    # iam:PassRole on the role's ARN, with iam:PassedToService naming the receiving service.
    return Check("iam:PassRole", role_arn, {"iam:PassedToService": f"{service}.amazonaws.com"})


def serverless_checks(request: Request, lookups: Lookups) -> list[Check]:
    found = rest_operation("emr-serverless", request)
    if found is None:
        return []
    operation, params = found
    action = f"emr-serverless:{operation}"
    base = f"arn:aws:emr-serverless:{request.region}:{request.account}:/applications"
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        body = {}
    tags = {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
    app_id, run_id = params.get("applicationId"), params.get("jobRunId")
    if operation == "CreateApplication":
        # SAR "API operations" table: CreateApplication authorizes
        # emr-serverless:CreateApplication and, with tags, emr-serverless:TagResource.
        checks = [Check(action, f"{base}/*", request_tags(tags))]
        if tags:
            checks.append(Check("emr-serverless:TagResource", f"{base}/*", request_tags(tags)))
        return checks
    if operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        arn = urllib.parse.unquote(params.get("resourceArn", ""))
        context = tag_context("aws:ResourceTag", _serverless_tags(arn, lookups))
        if operation == "TagResource":
            context.update(request_tags(tags))
        elif operation == "UntagResource":
            context["aws:TagKeys"] = request.query.get("tagKeys", [])
        return [Check(action, arn, context)]
    if app_id is None:
        return [Check(action, "*")]
    if run_id is not None:
        arn = f"{base}/{app_id}/jobruns/{run_id}"
        tag_source = lookups.job_run_tags(app_id, run_id) or {}
    else:
        arn = f"{base}/{app_id}"
        tag_source = lookups.application_tags(app_id) or {}
    context = tag_context("aws:ResourceTag", tag_source)
    checks = [Check(action, arn, {**context, **request_tags(tags)})]
    if operation == "StartJobRun":
        if tags:
            checks.append(
                Check(
                    "emr-serverless:TagResource", f"{base}/{app_id}/jobruns/*", request_tags(tags)
                )
            )
        if body.get("executionRoleArn"):
            checks.append(_pass_role(str(body["executionRoleArn"]), "emr-serverless"))
    return checks


def _serverless_tags(arn: str, lookups: Lookups) -> dict[str, str]:
    parts = arn.split(":/applications/", 1)[-1].split("/")
    if len(parts) >= 3 and parts[1] == "jobruns":
        return lookups.job_run_tags(parts[0], parts[2]) or {}
    return lookups.application_tags(parts[0]) or {}


# S3: the IAM action of each REST operation (SAR "Actions defined by Amazon S3": e.g. ListObjectsV2
# and HeadBucket are s3:ListBucket, HeadObject is s3:GetObject, the multipart operations
# s3:PutObject, DeleteObjects s3:DeleteObject per key, GetBucketEncryption
# s3:GetEncryptionConfiguration). Others are s3:<Operation>.
_S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "CopyObject": "PutObject",
    "UploadPartCopy": "PutObject",
    "DeleteObjects": "DeleteObject",
    "ListParts": "ListMultipartUploadParts",
    "ListBuckets": "ListAllMyBuckets",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "DeleteBucketPolicy": "DeleteBucketPolicy",
}


def s3_checks(request: Request) -> list[Check]:
    found = rest_operation("s3", request)
    if found is None:
        return []
    operation, params = found
    action = "s3:" + _S3_ACTIONS.get(operation, operation)
    bucket, key = params.get("Bucket"), params.get("Key")
    if bucket is None:
        return [Check(action, "*")]
    if operation == "DeleteObjects":
        return [Check(action, f"arn:aws:s3:::{bucket}/{k}") for k in _delete_keys(request.body)]
    if key is not None:
        checks = [Check(action, f"arn:aws:s3:::{bucket}/{key}")]
        source = request.headers.get("x-amz-copy-source")
        if source:  # CopyObject also reads the source (SAR: s3:GetObject on it)
            path = urllib.parse.unquote(source.split("?")[0]).lstrip("/")
            checks.append(Check("s3:GetObject", f"arn:aws:s3:::{path}"))
        return checks
    context: dict[str, str | list[str]] = {}
    if action == "s3:ListBucket":  # SAR condition keys s3:prefix, s3:delimiter, s3:max-keys
        for name in ("prefix", "delimiter", "max-keys"):
            value = request.param(name)
            if value is not None:
                context[f"s3:{name}"] = value
    return [Check(action, f"arn:aws:s3:::{bucket}", context)]


def _delete_keys(body: bytes) -> list[str]:
    try:
        root = ElementTree.fromstring(body or b"<Delete/>")
    except ElementTree.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.rpartition("}")[2] == "Key"]


def query_params(request: Request) -> dict[str, str]:
    """The query protocol's parameters (form body and URL query together)."""
    params = {k: v[0] for k, v in request.query.items() if v}
    if request.body and request.method == "POST":
        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        params.update({k: v[0] for k, v in form.items() if v})
    return params


# IAM: the resource each role/profile/policy operation names (SAR "Actions defined by AWS
# Identity and Access Management": role, instance-profile, user, group, policy ARNs).
_IAM_RESOURCES = (
    ("RoleName", "role"),
    ("InstanceProfileName", "instance-profile"),
    ("UserName", "user"),
    ("GroupName", "group"),
)

SERVICE_LINKED_ROLE_NAMES = {
    "elasticmapreduce.amazonaws.com": "AWSServiceRoleForEMRCleanup",
    "ops.emr-serverless.amazonaws.com": "AWSServiceRoleForAmazonEMRServerless",
}
"""EMR Management Guide "Using service-linked roles for Amazon EMR for cleanup"; EMR
Serverless User Guide "Using service-linked roles for EMR Serverless"."""


def service_linked_role_arn(account: str, service: str) -> str:
    name = SERVICE_LINKED_ROLE_NAMES.get(service, "AWSServiceRoleFor*")
    return f"arn:aws:iam::{account}:role/aws-service-role/{service}/{name}"


def query_checks(request: Request, lookups: Lookups) -> list[Check]:
    params = query_params(request)
    operation = params.get("Action", "")
    if not operation:
        return []
    action = f"{request.service}:{operation}"
    if request.service == "sts" and operation == "GetCallerIdentity":
        return []  # STS API reference: no permission is required to call it
    if request.service == "sts" and "RoleArn" in params:
        return [Check(action, params["RoleArn"])]
    if request.service != "iam":
        return [Check(action, "*")]  # EC2's Describe* have no resource-level permissions
    if operation == "CreateServiceLinkedRole":
        service = params.get("AWSServiceName", "")
        return [
            Check(
                action,
                service_linked_role_arn(request.account, service),
                {"iam:AWSServiceName": service},
            )
        ]
    if "PolicyArn" in params and operation in ("GetPolicy", "GetPolicyVersion", "ListPolicyTags"):
        return [Check(action, params["PolicyArn"])]
    for member, kind in _IAM_RESOURCES:
        if member in params:
            name = params[member]
            arn = (
                lookups.role_arn(name)
                if kind == "role"
                else f"arn:aws:iam::{request.account}:{kind}/{name}"
            )
            return [Check(action, arn)]
    return [Check(action, "*")]


def json_checks(request: Request) -> list[Check]:
    """Other JSON-protocol services (e.g. Service Quotas): ``<service>:<Operation>`` on ``*``."""
    target = request.headers.get("x-amz-target", "")
    if not target:
        return []
    return [Check(f"{request.service}:{target.rpartition('.')[2]}", "*")]


def checks_for(request: Request, lookups: Lookups) -> list[Check]:
    """Every check AWS makes before it acts on ``request`` (empty: none known)."""
    if request.service == "elasticmapreduce":
        target = request.headers.get("x-amz-target", "")
        return emr_checks(request, target, lookups) if target else []
    if request.service == "emr-serverless":
        return serverless_checks(request, lookups)
    if request.service == "s3":
        return s3_checks(request)
    if request.service in ("iam", "sts", "ec2"):
        return query_checks(request, lookups)
    return json_checks(request)
