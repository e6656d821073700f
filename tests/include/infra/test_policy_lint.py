"""parliament (Duo Labs' offline IAM linter, with its community auditors) on every document
``print-roles`` renders: no finding beyond the intended ones listed here, each with its reason.

parliament checks actions, resource ARN formats and condition keys against its copy of the
Service Authorization Reference. Run with a dataset outside the prefix, so the statements
``--dataset-uri`` adds are linted too.
"""

from __future__ import annotations

import json
import sys
import types
from importlib.resources import files
from typing import Any

import pytest

from tests.include.infra.conftest import BUCKET

ALLOWED: dict[tuple[str, str, str], str] = {
    (
        "service_role:pass-project-instance-role",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "iam:passrole",
    ): "EMR must pass the instance role to EC2; the statement names that one role only",
    (
        "airflow_policy",
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "iam:createservicelinkedrole,iam:passrole",
    ): "PassRole of the project's roles only, each to its service (iam:PassedToService); "
    "CreateServiceLinkedRole of EMR's and EMR Serverless's own roles only (iam:AWSServiceName)",
    **{
        (f"{role}:trust", "MALFORMED", "Statement contains neither Resource nor NotResource"): (
            "a trust policy names a Principal, not a Resource (IAM User Guide, 'Role trust "
            "policy'); parliament 1.6.4 lints every document as an identity policy"
        )
        for role in ("service_role", "instance_role", "serverless_job_role")
    },
}


def _parliament() -> Any:
    """parliament 1.6.4 reads its data files with pkg_resources, which setuptools >= 81 no
    longer ships: give it the one function it calls, from importlib.resources."""
    if "parliament" in sys.modules:
        return sys.modules["parliament"]
    shim = None
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            shim = types.ModuleType("pkg_resources")
            shim.resource_filename = lambda package, name: str(files(package) / name)  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = shim
    try:
        import parliament
    finally:
        # parliament reads its data files at import only: the stand-in must not outlive it
        # (pytest's monkeypatch.syspath_prepend, for one, calls into any pkg_resources loaded).
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]
    return parliament


def documents(printed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    docs = {"airflow_policy": printed["airflow_policy"]["document"]}
    for role in ("service_role", "instance_role", "serverless_job_role"):
        docs[f"{role}:trust"] = printed[role]["trust_policy"]
        for name, document in printed[role]["inline_policies"].items():
            docs[f"{role}:{name}"] = document
    return docs


def findings(name: str, document: dict[str, Any]) -> list[tuple[str, str, str]]:
    policy = _parliament().analyze_policy_string(
        json.dumps(document), include_community_auditors=True
    )
    found = []
    for finding in policy.findings:
        detail = finding.detail or ",".join(sorted(finding.location.get("actions", [])))
        found.append((name, finding.issue, detail if isinstance(detail, str) else str(detail)))
    return found


@pytest.fixture
def printed(aws, cli, monkeypatch) -> dict[str, Any]:
    monkeypatch.delenv("FRUITS_DATASET_URI", raising=False)
    result = cli(
        "print-roles",
        "--bucket",
        BUCKET,
        "--account-id",
        "123456789012",
        "--dataset-uri",
        "s3://data-team-images/fruits/2026/",
    )
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_the_rendered_iam_documents_have_no_unexpected_parliament_finding(printed):
    docs = documents(printed)
    assert len(docs) == 7  # 3 trust + 3 inline + the Airflow policy
    found = [f for name, document in docs.items() for f in findings(name, document)]
    unexpected = [f for f in found if f not in ALLOWED]
    assert unexpected == []
    assert set(found) == set(ALLOWED)  # an allowance nothing needs any more is removed


def test_parliament_would_catch_a_mistake_in_a_document():
    broken = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObjects",
                "Resource": "arn:aws:s3:::bucket/*",
            },
            {
                "Effect": "Allow",
                "Action": "elasticmapreduce:RunJobFlow",
                "Resource": "*",
                "Condition": {"StringEquals": {"s3:prefix": "x"}},
            },
        ],
    }
    issues = {issue for _, issue, _ in findings("broken", broken)}
    assert "UNKNOWN_ACTION" in issues
    assert "UNKNOWN_CONDITION_FOR_ACTION" in issues
