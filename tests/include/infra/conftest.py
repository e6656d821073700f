"""Fixtures for the infra CLI tests: moto's in-process AWS, and the CLI run in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from include.config import PROJECT_TAG
from include.infra.cli import main
from tests import emr_fakes

REGION = "eu-west-1"
ACCOUNT_ID = DEFAULT_ACCOUNT_ID
BUCKET = "fruits-features-test-bucket"


@dataclass
class CliResult:
    """Exit code and captured output of one in-process CLI call."""

    code: int
    out: str
    err: str


def _https_bucket_policies(monkeypatch) -> None:
    """Make moto evaluate bucket policies as S3 does for boto3's HTTPS requests.

    moto ignores policy conditions, so the TLS-only statements (Deny when
    aws:SecureTransport is false / TLS < 1.2) would deny every object request. boto3 always
    uses TLS >= 1.2, for which those conditions are false: drop conditional statements.
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy)
        document["Statement"] = [s for s in document["Statement"] if "Condition" not in s]
        if not document["Statement"]:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)

    monkeypatch.setattr(FakeBucket, "get_permission", get_permission)


def _mock_aws(monkeypatch, tmp_path, *, managed_policies: bool) -> Iterator[None]:
    # AWS-managed IAM policies (AmazonEMRServicePolicy_v2) only exist in moto when loaded;
    # loading them makes every test's teardown ~2 s slower, so only IAM tests do.
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", str(managed_policies).lower())
    for name in ("FRUITS_BUCKET", "FRUITS_PREFIX", "FRUITS_REGION", "FRUITS_CLUSTER_TTL_HOURS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(tmp_path / "results"))
    _https_bucket_policies(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def aws(monkeypatch, tmp_path) -> Iterator[None]:
    """Moto's in-process AWS and a clean FRUITS_* environment."""
    yield from _mock_aws(monkeypatch, tmp_path, managed_policies=False)


@pytest.fixture
def aws_iam(monkeypatch, tmp_path) -> Iterator[None]:
    """Like ``aws``, with AWS-managed IAM policies loaded (create-roles attaches one)."""
    yield from _mock_aws(monkeypatch, tmp_path, managed_policies=True)


@pytest.fixture
def cli(capsys):
    """Run ``python -m include.infra`` in-process: ``cli("status", "--json")``."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def s3():
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def iam():
    return boto3.client("iam", region_name=REGION)


@pytest.fixture
def emr():
    return boto3.client("emr", region_name=REGION)


def start_cluster(emr, *, project: bool = True, name: str = "fruits-run") -> str:
    """A WAITING cluster with 1 m5.xlarge master + 2 m5.2xlarge core nodes."""
    tags = {"Project": PROJECT_TAG if project else "someone-else"}
    return emr_fakes.start_cluster(emr, tags=tags, name=name, core=("m5.2xlarge", 2))


def cluster_state(emr, cluster_id: str) -> str:
    return emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
