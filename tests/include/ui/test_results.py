"""Which of a run's files the plugin serves, from the local folder or (EMR runs) from S3."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from moto import mock_aws

from include.config import PipelineConfig
from include.ui.results import (
    NotServed,
    cost_figures,
    last_success_record,
    local_file,
    read_result,
    run_summary,
    served_name,
)

REGION = "eu-west-1"
EMR = "fruits_emr_pipeline"
RUN = "manual__2026-12-01T10:00:00+00:00"
KEY = "fruits/results/manual__2026-12-01T10_00_00_00_00"


@pytest.fixture
def config(tmp_path):
    return PipelineConfig(region=REGION, bucket="ui-bucket", prefix="fruits", results_dir=tmp_path)


@pytest.mark.parametrize(
    "name", ["metrics.json", "cost_estimate.json", "report/report.html", "report/pca_scatter.png"]
)
def test_the_published_files_may_be_served(name):
    assert served_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "_SUCCESS",
        "fingerprint.json",
        "report/../metrics.json",
        "report/..png",
        "report/.hidden.png",
        "report/a/b.png",
        "report/x.txt",
        "/etc/passwd",
        "../_last_success.json",
        "pca/part-0.parquet",
    ],
)
def test_anything_else_is_refused(name):
    with pytest.raises(NotServed):
        served_name(name)


def test_a_symlink_out_of_the_run_folder_is_refused(config, tmp_path):
    folder = tmp_path / "fruits_local_pipeline" / "r1"
    (folder / "report").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    os.symlink(secret, folder / "report" / "leak.png")
    with pytest.raises(NotServed, match="leaves the run's results folder"):
        local_file(tmp_path, "fruits_local_pipeline", "r1", "report/leak.png")
    assert local_file(tmp_path, "fruits_local_pipeline", "r1", "report/none.png") is None


def test_only_the_pipeline_dags_have_results(config):
    with pytest.raises(NotServed, match="not one of the project's pipeline DAGs"):
        read_result(config, "fruits_emr_sweeper", "r1", "metrics.json")


def test_an_emr_run_without_a_local_copy_is_read_from_its_s3_results(config):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket="ui-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        s3.put_object(Bucket="ui-bucket", Key=f"{KEY}/report/report.html", Body=b"<h1>S3</h1>")
        served = read_result(config, EMR, RUN, "report/report.html")
        assert served.content == b"<h1>S3</h1>"
        assert served.source == f"s3://ui-bucket/{KEY}/report/report.html"
        with pytest.raises(NotServed, match=r"has no metrics\.json"):
            read_result(config, EMR, RUN, "metrics.json")
        # The local copy wins when there is one.
        local = config.results_dir / EMR / KEY.rsplit("/", 1)[1] / "report"
        local.mkdir(parents=True)
        (local / "report.html").write_text("<h1>local</h1>")
        assert read_result(config, EMR, RUN, "report/report.html").content == b"<h1>local</h1>"


def test_a_local_run_is_never_looked_for_in_s3(config):
    with pytest.raises(NotServed, match=r"has no report/report\.html"):
        read_result(config, "fruits_local_pipeline", RUN, "report/report.html")  # no AWS call


def test_the_emr_record_is_read_from_s3_and_the_local_one_from_the_dag_folder(config):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket="ui-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        assert last_success_record(config, EMR) is None
        s3.put_object(
            Bucket="ui-bucket", Key="fruits/results/_last_success.json", Body=b'{"run_id": "a"}'
        )
        assert last_success_record(config, EMR) == {"run_id": "a"}
    dag_dir = config.results_dir / "fruits_local_pipeline"
    dag_dir.mkdir()
    (dag_dir / "_last_success.json").write_text('{"run_id": "b"}')
    assert last_success_record(config, "fruits_local_pipeline") == {"run_id": "b"}


def test_the_summary_and_costs_of_an_emr_run(tmp_path):
    run = tmp_path / EMR / "r1"
    run.mkdir(parents=True)
    assert run_summary(run) is None  # no metrics.json: no results
    (run / "metrics.json").write_text(
        json.dumps({"counts": {"valid_images": 9, "featurized": 9, "reused": 0}, "pca": {"k": 3}})
    )
    (run / "cost_estimate.json").write_text(json.dumps({"estimated_usd": 0.42}))
    (run / "cluster.json").write_text(json.dumps({"Cluster": {"Id": "j-1"}}))  # damaged
    summary = run_summary(run)
    assert (summary["images"], summary["k"], summary["featurized"]) == (9, 3, 9)
    assert summary["report"] is False
    assert summary["estimated_usd"] == 0.42
    assert summary["actual_usd"] is None
    assert "CreationDateTime" in summary["error"]  # why the actual cost is missing


def test_a_local_run_costs_nothing(tmp_path):
    run = tmp_path / "fruits_local_pipeline" / "r1"
    run.mkdir(parents=True)
    assert cost_figures(run) == {
        "estimated_usd": None,
        "actual_usd": 0.0,
        "kind": "local",
        "error": None,
    }
