"""The DAGs' preflight task bodies (include/infra/dag_preflight.py) for a real plan, in moto:
an account without the project's roles fails, naming them; every check is logged."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.infra import dag_preflight

REGION = "eu-west-1"
BUCKET = "fruits-test-bucket"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


@pytest.mark.slow  # moto's EC2 and Service Quotas: 7-25 s here
def test_cluster_preflight_in_an_empty_account_fails_naming_what_is_missing(run_account, capsys):
    from include.emr.tasks import validate_params

    params = {"wheelhouse": False, "weights": "none"}
    plan = validate_params(params, dag_id="fruits_emr_pipeline", run_id=RUN_ID)
    with pytest.raises(AirflowFailException, match="preflight failed, nothing was created") as e:
        dag_preflight.preflight_cluster(plan)
    assert "role" in str(e.value).lower()
    logged = capsys.readouterr().out
    assert logged.count("\n") >= 4  # every check logged, the passing ones too
    assert "bucket" in logged.lower()


def test_serverless_preflight_without_the_job_role_fails_naming_it(run_account, capsys):
    from include.emr_serverless.tasks import validate_params

    plan = validate_params({"weights": "none"}, dag_id="d", run_id=RUN_ID)
    with pytest.raises(AirflowFailException, match="preflight failed, nothing was created") as e:
        dag_preflight.preflight_serverless_run(plan)
    assert plan["execution_role"].rsplit("/", 1)[-1] in str(e.value)


def test_serverless_preflight_returns_the_arn_of_a_role_named_in_the_plan(run_account, monkeypatch):
    """StartJobRun takes the ARN: a role the plan names is looked up (the role and bucket
    made as create-roles would, without its managed policies: nothing attaches one)."""
    import boto3

    from include.emr_serverless.tasks import validate_params
    from include.infra.aws import AwsContext
    from include.infra.iam import RoleSettings, render_documents
    from include.infra.policies import policy_json

    plan = validate_params({"weights": "none"}, dag_id="d", run_id=RUN_ID)
    role = plan["execution_role"].rsplit("/", 1)[-1]
    session = boto3.session.Session(region_name=REGION)
    docs = render_documents(AwsContext(session=session, region=REGION), RoleSettings(BUCKET, "p"))
    arn = session.client("iam").create_role(
        RoleName=role, AssumeRolePolicyDocument=policy_json(docs["emr-serverless-trust"])
    )["Role"]["Arn"]
    session.client("s3").put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    result = dag_preflight.preflight_serverless_run({**plan, "execution_role": role})
    assert result["job_role_arn"] == arn
    assert [c["name"] for c in result["checks"]] == ["serverless job role", "bucket"]
