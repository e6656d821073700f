"""The IAM and bucket policy documents shipped as JSON in ``include/infra/policies/``.

They are templates: ``${bucket}``, ``${prefix}``, ``${account_id}``, ``${region}``,
``${partition}``, ``${service_role}``, ``${instance_role}``, ``${serverless_job_role}`` and
``${project_tag}`` are filled
in by :func:`render_policy`, which fails if a placeholder is left or the result is not JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any

POLICY_DIR = Path(__file__).resolve().parent / "policies"

POLICY_FILES: dict[str, str] = {
    "bucket": "bucket-policy.json",
    "emr-service-trust": "emr-service-trust.json",
    "emr-service-inline": "emr-service-inline.json",
    "emr-ec2-trust": "emr-ec2-trust.json",
    "emr-ec2-inline": "emr-ec2-inline.json",
    "emr-serverless-trust": "emr-serverless-trust.json",
    "emr-serverless-job": "emr-serverless-job.json",
    "airflow-pipeline": "airflow-pipeline.json",
}
"""Logical name -> file in POLICY_DIR."""

EMR_SERVICE_MANAGED_POLICY = "service-role/AmazonEMRServicePolicy_v2"
"""AWS-maintained, tag-scoped policy for the EMR service role (replaces AmazonElasticMapReduceRole).

It only acts on resources tagged ``for-use-with-amazon-emr-managed-policies=true``: clusters must
carry that tag (EMR propagates it), and so must a subnet or security groups you bring yourself.
"""


def render_policy(name: str, **values: str) -> dict[str, Any]:
    """Load policy template ``name`` (a key of POLICY_FILES) with ``values`` substituted."""
    try:
        path = POLICY_DIR / POLICY_FILES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICY_FILES)}") from None
    try:
        text = Template(path.read_text()).substitute(values)
    except KeyError as exc:
        raise ValueError(f"policy {name!r} needs a value for {exc.args[0]!r}") from None
    return json.loads(text)


def policy_json(document: dict[str, Any]) -> str:
    """The compact JSON form IAM and S3 accept."""
    return json.dumps(document, separators=(",", ":"))
