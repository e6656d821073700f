"""IAM for datasets read in place from another bucket or prefix: read-only, that prefix only."""

from __future__ import annotations

import json

import pytest

from include.infra.dataset_access import LIST_SID, READ_SID, dataset_read_statements
from include.infra.iam import DEFAULT_INSTANCE_ROLE, DEFAULT_SERVERLESS_JOB_ROLE
from include.params.dataset_uri import outside_project, parse_dataset_uri
from tests.include.infra.conftest import BUCKET

OTHER = "s3://data-team-images/fruits/2026/"


def _statements(document: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in document["Statement"]}


@pytest.fixture(autouse=True)
def _no_dataset_env(monkeypatch):
    monkeypatch.delenv("FRUITS_DATASET_URI", raising=False)


def test_an_outside_prefix_gets_list_on_that_prefix_and_get_object_only():
    listing, read = dataset_read_statements(OTHER, bucket=BUCKET, prefix="fruits")
    assert listing == {
        "Sid": LIST_SID,
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::data-team-images",
        "Condition": {"StringLike": {"s3:prefix": ["fruits/2026", "fruits/2026/*"]}},
    }
    assert read == {
        "Sid": READ_SID,
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::data-team-images/fruits/2026/*",
    }


@pytest.mark.parametrize(
    ("uri", "needed"),
    [
        (None, False),
        (f"s3://{BUCKET}/fruits/datasets/fruits-360/images/", False),  # the project's own
        (f"s3://{BUCKET}/fruits", False),
        (f"s3://{BUCKET}/fruits-archive/images/", True),  # same bucket, other prefix
        (f"s3://{BUCKET}/", True),
        ("s3://other-bucket/fruits/", True),
    ],
)
def test_statements_only_when_the_dataset_is_outside_the_project_prefix(uri, needed):
    statements = dataset_read_statements(uri, bucket=BUCKET, prefix="fruits")
    assert bool(statements) == needed


def test_a_whole_bucket_dataset_lists_that_bucket_and_reads_its_objects():
    listing, read = dataset_read_statements("s3://data-team-images", bucket=BUCKET, prefix="f")
    assert "Condition" not in listing  # the whole bucket is the dataset
    assert read["Resource"] == "arn:aws:s3:::data-team-images/*"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/local/folder", "must start with s3://"),
        ("s3://Bad_Bucket/x/", "not a valid S3 bucket name"),
        ("s3://data-team-images/fruits/*", "must not contain wildcards"),
        ("s3://data-team-images/${aws:username}/", "must not contain wildcards"),
        ("s3://data-team-images/a//b/", "empty path segment"),
    ],
)
def test_a_malformed_uri_is_refused_with_the_reason(uri, message):
    with pytest.raises(ValueError, match=message):
        parse_dataset_uri(uri)


def test_outside_project_does_not_confuse_similar_prefixes():
    assert outside_project(f"s3://{BUCKET}/fruitsX/a", bucket=BUCKET, prefix="fruits")
    assert not outside_project(f"s3://{BUCKET}/fruits/a", bucket=BUCKET, prefix="/fruits/")


def test_print_roles_adds_read_on_the_dataset_and_changes_nothing_else(aws, cli):
    plain = json.loads(cli("print-roles", "--bucket", BUCKET, "--account-id", "1" * 12).out)
    result = cli(
        "print-roles", "--bucket", BUCKET, "--account-id", "1" * 12, "--dataset-uri", OTHER
    )
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    before = plain["instance_role"]["inline_policies"]["project-bucket-access"]
    after = printed["instance_role"]["inline_policies"]["project-bucket-access"]
    added = [s for s in after["Statement"] if s not in before["Statement"]]
    assert [s["Sid"] for s in added] == [LIST_SID, READ_SID]
    assert after["Statement"][: len(before["Statement"])] == before["Statement"]
    # Read only, and only on that bucket/prefix.
    assert {s["Action"] for s in added} == {"s3:ListBucket", "s3:GetObject"}
    assert all("data-team-images" in s["Resource"] for s in added)
    # The Airflow identity may list the dataset (validate_dataset does), not read it.
    airflow_added = [
        s
        for s in printed["airflow_policy"]["document"]["Statement"]
        if s not in plain["airflow_policy"]["document"]["Statement"]
    ]
    assert airflow_added == [added[0]]
    assert airflow_added[0]["Action"] == "s3:ListBucket"
    assert airflow_added[0]["Condition"] == {
        "StringLike": {"s3:prefix": ["fruits/2026", "fruits/2026/*"]}
    }
    # Everything else is unchanged.
    for key in ("service_role", "tags"):
        assert printed[key] == plain[key], key
    assert printed["instance_role"]["trust_policy"] == plain["instance_role"]["trust_policy"]


def test_print_roles_takes_the_dataset_from_the_configuration(aws, cli, monkeypatch):
    monkeypatch.setenv("FRUITS_DATASET_URI", OTHER)
    printed = json.loads(cli("print-roles", "--bucket", BUCKET, "--account-id", "1" * 12).out)
    statements = _statements(printed["instance_role"]["inline_policies"]["project-bucket-access"])
    assert statements[READ_SID]["Resource"] == "arn:aws:s3:::data-team-images/fruits/2026/*"


def test_create_roles_puts_the_dataset_read_into_the_instance_profile_policy(aws_iam, cli, iam):
    result = cli("create-roles", "--bucket", BUCKET, "--dataset-uri", OTHER)
    assert result.code == 0, result.err
    assert f"may read (only read) the dataset {OTHER}" in result.out
    document = iam.get_role_policy(
        RoleName=DEFAULT_INSTANCE_ROLE, PolicyName="project-bucket-access"
    )
    document = document["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    statements = _statements(document)
    assert statements[LIST_SID]["Condition"] == {
        "StringLike": {"s3:prefix": ["fruits/2026", "fruits/2026/*"]}
    }
    assert statements[READ_SID]["Action"] == "s3:GetObject"
    # No write anywhere outside the project's own prefix.
    writes = [s for s in document["Statement"] if "s3:PutObject" in json.dumps(s["Action"])]
    assert [s["Resource"] for s in writes] == [f"arn:aws:s3:::{BUCKET}/fruits/*"]
    # The Serverless job role reads it the same way (the same two statements), writes nowhere.
    job = iam.get_role_policy(
        RoleName=DEFAULT_SERVERLESS_JOB_ROLE, PolicyName="project-bucket-access"
    )
    job = job["PolicyDocument"]
    job = json.loads(job) if isinstance(job, str) else job
    assert _statements(job)[LIST_SID] == statements[LIST_SID]
    assert _statements(job)[READ_SID] == statements[READ_SID]
    writes = [s for s in job["Statement"] if "s3:PutObject" in json.dumps(s["Action"])]
    assert [s["Resource"] for s in writes] == [f"arn:aws:s3:::{BUCKET}/fruits/*"]


def test_create_roles_refuses_a_malformed_dataset_uri_before_creating_anything(aws_iam, cli, iam):
    result = cli("create-roles", "--bucket", BUCKET, "--dataset-uri", "s3://data-team-images/*")
    assert result.code == 2
    assert "wildcards" in result.err
    assert iam.list_roles()["Roles"] == []
