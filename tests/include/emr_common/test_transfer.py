"""The cluster's description saved for the report (include/emr_common/transfer.py), in moto."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from include.emr_common.transfer import record_final_cluster_state

REGION = "eu-west-1"
PLAN = {"aws_conn_id": None, "region": REGION, "poke_interval": 1}


@pytest.fixture
def emr():
    with mock_aws():
        yield boto3.client("emr", region_name=REGION)


def _cluster(emr) -> str:
    return emr.run_job_flow(
        Name="fruits-test",
        ReleaseLabel="emr-7.12.0",
        Instances={
            "InstanceGroups": [
                {
                    "InstanceRole": "MASTER",
                    "InstanceType": "m5.xlarge",
                    "InstanceCount": 1,
                    "Market": "ON_DEMAND",
                }
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]


def test_the_report_records_the_state_after_the_teardown_not_at_download(emr, tmp_path):
    cluster_id = _cluster(emr)
    seen_at_download = {"Cluster": {"Id": cluster_id, "Status": {"State": "WAITING"}}}
    (tmp_path / "cluster.json").write_text(json.dumps(seen_at_download))
    emr.terminate_job_flows(JobFlowIds=[cluster_id])

    state = record_final_cluster_state(PLAN, str(tmp_path), cluster_id, max_wait_s=5)

    saved = json.loads((tmp_path / "cluster.json").read_text())
    assert state == "TERMINATED"
    assert saved["Cluster"]["Status"]["State"] == "TERMINATED"
    assert saved["InstanceGroups"][0]["InstanceType"] == "m5.xlarge"
    assert saved["CapturedAt"]
    assert not (tmp_path / "cluster.json.partial").exists()


def test_a_cluster_still_up_after_the_wait_is_recorded_as_seen(emr, tmp_path):
    cluster_id = _cluster(emr)

    state = record_final_cluster_state(PLAN, str(tmp_path), cluster_id, max_wait_s=1)

    assert state == "WAITING"
    assert json.loads((tmp_path / "cluster.json").read_text())["Cluster"]["Id"] == cluster_id


def test_no_cluster_no_file(tmp_path):
    assert record_final_cluster_state(PLAN, str(tmp_path), None) is None
    assert not (tmp_path / "cluster.json").exists()
