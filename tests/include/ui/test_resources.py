"""The "running and billing now" lookup: the project's clusters and applications by tag."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from include.config import PROJECT_TAG, PipelineConfig
from include.ui.resources import active_resources
from tests import emr_fakes
from tests.application_fakes import create_application, start_job_run

REGION = "eu-west-1"
TAGS = {"Project": PROJECT_TAG, "dag_id": "fruits_emr_serverless_pipeline", "run_id": "m__1"}


@pytest.fixture
def config(tmp_path):
    return PipelineConfig(region=REGION, results_dir=tmp_path, cluster_ttl_hours=3)


def test_project_clusters_and_applications_with_age_cost_and_ttl(config):
    with mock_aws():
        emr = boto3.client("emr", region_name=REGION)
        old = emr_fakes.start_cluster(emr, tags={"Project": PROJECT_TAG}, core=("m5.2xlarge", 2))
        emr_fakes.age_cluster(old, 5)
        young = emr_fakes.start_cluster(emr, tags={"Project": PROJECT_TAG})
        emr_fakes.age_cluster(young, 1)
        emr_fakes.start_cluster(emr, tags={"Project": "someone-else"})
        serverless = boto3.client("emr-serverless", region_name=REGION)
        app = create_application(serverless, name="fruits-a", tags=TAGS, age_hours=4)
        start_job_run(serverless, app, state="RUNNING")
        create_application(serverless, name="x", tags={"Project": "other"}, age_hours=9)

        found = active_resources(config)

    assert found["error"] is None
    assert found["ttl_hours"] == 3
    clusters = {c["cluster_id"]: c for c in found["clusters"]}
    assert set(clusters) == {old, young}  # not the foreign one
    assert clusters[old]["past_ttl"] is True
    assert clusters[young]["past_ttl"] is False
    assert clusters[old]["age_hours"] == pytest.approx(5, abs=0.05)
    # 5 h of 1 m5.xlarge + 2 m5.2xlarge, priced: more than the 1 h, 1-node cluster.
    assert clusters[old]["estimated_usd"] > clusters[young]["estimated_usd"] > 0
    (application,) = found["applications"]
    assert application["application_id"] == app
    assert application["past_ttl"] is True
    assert application["created_by"] == "fruits_emr_serverless_pipeline/m__1"
    assert application["cost_usd"] >= 0


def test_an_unreachable_aws_is_said_not_raised(config, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        '{"conn_type": "aws", "extra": {"region_name": "eu-west-1", '
        '"endpoint_url": "http://127.0.0.1:9"}}',
    )
    found = active_resources(config)
    assert found["clusters"] == []
    assert found["applications"] == []
    assert "127.0.0.1:9" in found["error"]
