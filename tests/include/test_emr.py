"""Pure EMR builders, the run plan, cluster lookup by tag and the failed-step report."""

from __future__ import annotations

import dataclasses
import gzip

import boto3
import pytest

from include.config import PROJECT_TAG, PipelineConfig
from include.emr import (
    build_job_flow_overrides,
    build_run_plan,
    build_spark_step,
    describe_step_failure,
    find_clusters,
    redact,
    step_stderr_uri,
)
from include.job_args import safe_run_id
from include.params import emr_settings_from_params
from tests.emr_fakes import start_cluster

RUN_ID = "manual__2026-01-02T03:04:05.678+00:00"
REGION = "eu-west-1"


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    return PipelineConfig(bucket="b", prefix="p", results_dir=tmp_path, subnet_id="subnet-1")


@pytest.fixture
def plan(config):
    settings = emr_settings_from_params({"weights": "none", "core_nodes": 3})
    return build_run_plan(settings, config, dag_id="fruits_emr_pipeline", run_id=RUN_ID)


def test_overrides_have_spark_livy_bootstrap_logs_tags_and_backstop(plan, config):
    overrides = plan["job_flow_overrides"]
    assert {a["Name"] for a in overrides["Applications"]} == {"Spark", "Livy"}
    assert overrides["ReleaseLabel"].startswith("emr-7.")
    assert overrides["LogUri"] == config.log_uri == "s3://b/p/logs/emr/"
    (bootstrap,) = overrides["BootstrapActions"]
    assert bootstrap["ScriptBootstrapAction"]["Path"] == "s3://b/" + plan["code_keys"]["bootstrap"]
    assert bootstrap["ScriptBootstrapAction"]["Args"] == [
        "s3://b/" + plan["code_keys"]["requirements"]
    ]
    assert overrides["AutoTerminationPolicy"] == {"IdleTimeout": 30 * 60}
    tags = {t["Key"]: t["Value"] for t in overrides["Tags"]}
    assert tags == {"Project": PROJECT_TAG, "dag_id": "fruits_emr_pipeline", "run_id": RUN_ID}
    instances = overrides["Instances"]
    assert instances["KeepJobFlowAliveWhenNoSteps"] is True  # the step is added afterwards
    assert instances["Ec2SubnetId"] == "subnet-1"
    groups = {g["InstanceRole"]: g for g in instances["InstanceGroups"]}
    assert groups["MASTER"]["InstanceCount"] == 1
    assert groups["CORE"]["InstanceCount"] == 3
    assert groups["CORE"]["Market"] == "ON_DEMAND"
    classifications = {c["Classification"]: c for c in overrides["Configurations"]}
    assert {"spark-env", "spark-defaults", "livy-conf"} <= set(classifications)
    export = classifications["spark-env"]["Configurations"][0]["Properties"]
    assert export["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    assert (
        "spark.sql.execution.arrow.maxRecordsPerBatch"
        in classifications["spark-defaults"]["Properties"]
    )


def test_eu_region_by_default(plan):
    assert plan["region"] == "eu-west-1"


def test_spot_core_nodes_and_master_on_demand(config):
    settings = emr_settings_from_params({"spot_core_nodes": True})
    overrides = build_job_flow_overrides(
        settings, config, name="n", tags={}, bootstrap_uri="s3://b/x", requirements_uri="s3://b/r"
    )
    markets = {g["InstanceRole"]: g["Market"] for g in overrides["Instances"]["InstanceGroups"]}
    assert markets == {"MASTER": "ON_DEMAND", "CORE": "SPOT"}


def test_builders_return_new_dicts(config):
    settings = emr_settings_from_params({})
    kwargs = {"name": "n", "tags": {}, "bootstrap_uri": "s3://b/x", "requirements_uri": "s3://b/r"}
    first = build_job_flow_overrides(settings, config, **kwargs)
    first["Applications"].append({"Name": "Hive"})
    assert build_job_flow_overrides(settings, config, **kwargs)["Applications"] == [
        {"Name": "Spark"},
        {"Name": "Livy"},
    ]


def test_spark_step_is_an_argument_list_naming_the_uploaded_script(plan):
    (step,) = plan["steps"]
    jar = step["HadoopJarStep"]
    assert jar["Jar"] == "command-runner.jar"
    args = jar["Args"]
    assert isinstance(args, list)
    assert all(isinstance(a, str) for a in args)
    assert args[0] == "spark-submit"
    assert args[args.index("--py-files") + 1] == "s3://b/" + plan["code_keys"]["py_files"]
    entry = "s3://b/" + plan["code_keys"]["entry_script"]
    assert entry in args
    job_args = args[args.index(entry) + 1 :]
    assert job_args[job_args.index("--run-id") + 1] == plan["run_key"]
    assert job_args[job_args.index("--output") + 1] == "s3://b/p/results"
    assert job_args[job_args.index("--input") + 1] == f"s3://b/{plan['dataset_prefix']}/"
    assert step["ActionOnFailure"] == "CONTINUE"


def test_step_builder_keeps_mode_specific_flags(plan):
    settings = emr_settings_from_params({"mode": "full", "pca_k": 7, "weights": "none"})
    step = build_spark_step(
        settings.job,
        name="s",
        entry_script_uri="s3://b/e.py",
        py_files_uri="s3://b/z.zip",
        input_uri="s3://b/in/",
        output_uri="s3://b/out",
        run_id="r",
    )
    args = step["HadoopJarStep"]["Args"]
    assert "--max-images" not in args
    assert args[args.index("--pca-k") + 1] == "7"


def test_plan_keys_are_run_scoped_and_results_local_dir(plan, config):
    rid = plan["run_key"]
    assert rid == safe_run_id(RUN_ID)
    assert all(f"/runs/{rid}/code/" in key for key in plan["code_keys"].values())
    assert plan["results_prefix"] == f"p/results/{rid}"
    assert plan["results_dir"] == str(config.results_dir / rid)


def test_local_weights_file_is_uploaded_and_passed_as_s3_uri(config):
    settings = emr_settings_from_params({"weights": "/models/mobilenet.h5"})
    plan = build_run_plan(settings, config, dag_id="d", run_id="r1")
    assert plan["weights_file"] == "/models/mobilenet.h5"
    assert plan["weights_key"] == "p/runs/r1/code/weights/mobilenet.h5"
    args = plan["steps"][0]["HadoopJarStep"]["Args"]
    assert args[args.index("--weights") + 1] == "s3://b/p/runs/r1/code/weights/mobilenet.h5"


def test_redact_masks_keys_and_secrets():
    text = redact("key AKIAABCDEFGHIJKLMNOP and password=hunter2 and aws_session_token: xyz")
    assert "AKIAABCDEFGHIJKLMNOP" not in text
    assert "hunter2" not in text
    assert "xyz" not in text


@pytest.fixture
def moto_emr():
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("emr", region_name=REGION)


def _cluster(emr, tags):
    return start_cluster(emr, tags=tags, name="c")


def test_find_clusters_matches_every_tag_and_live_states_only(moto_emr):
    mine = {"Project": PROJECT_TAG, "run_id": "r1"}
    target = _cluster(moto_emr, mine)
    _cluster(moto_emr, {"Project": PROJECT_TAG, "run_id": "r2"})
    _cluster(moto_emr, {})
    dead = _cluster(moto_emr, mine)
    moto_emr.terminate_job_flows(JobFlowIds=[dead])
    assert [c["Id"] for c in find_clusters(moto_emr, tags=mine)] == [target]


def test_failed_step_report_has_details_and_stderr_tail(moto_emr):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="fruits-logs", CreateBucketConfiguration={"LocationConstraint": REGION})
    lines = [f"line {i}" for i in range(100)] + ["Error: boom", "token=s3cr3t"]
    uri = step_stderr_uri("s3://fruits-logs/emr/", "j-1", "s-1")
    assert uri == "s3://fruits-logs/emr/j-1/steps/s-1/stderr.gz"
    s3.put_object(
        Bucket="fruits-logs",
        Key="emr/j-1/steps/s-1/stderr.gz",
        Body=gzip.compress("\n".join(lines).encode()),
    )
    # The PySpark driver's own output (its stderr is merged into spark-submit's stdout).
    s3.put_object(
        Bucket="fruits-logs",
        Key="emr/j-1/steps/s-1/stdout.gz",
        Body=gzip.compress(b"rows 0\nerror: zero valid images under s3://x/\n"),
    )
    step = {
        "Id": "s-1",
        "Name": "features",
        "Status": {
            "State": "FAILED",
            "FailureDetails": {"Reason": "Unknown", "Message": "exit code 1", "LogFile": "x"},
        },
    }
    report = describe_step_failure(
        step, s3_hook=S3Hook(aws_conn_id=None), log_uri="s3://fruits-logs/emr", cluster_id="j-1"
    )
    assert "s-1 (features) is FAILED" in report
    assert "Message: exit code 1" in report
    assert "Error: boom" in report
    assert "error: zero valid images under s3://x/" in report
    assert "line 99" in report
    assert "line 10\n" not in report  # only the tail
    assert "s3cr3t" not in report


def test_failed_step_report_without_logs_says_so(moto_emr):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="fruits-logs", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    step = {"Id": "s-2", "Name": "f", "Status": {"State": "CANCELLED"}}
    report = describe_step_failure(
        step, s3_hook=S3Hook(aws_conn_id=None), log_uri="s3://fruits-logs/emr/", cluster_id="j-1"
    )
    assert "is CANCELLED" in report
    assert "not there yet" in report


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("True", True), ("False", False)]
)
def test_templated_deferrable_flag_is_read_as_bool(value, expected):
    from include.emr import _as_bool

    assert _as_bool(value) is expected


def test_upload_job_package_uploads_code_and_local_weights(config, tmp_path):
    from moto import mock_aws

    from include.emr import upload_job_package

    weights = tmp_path / "mobilenet.h5"
    weights.write_bytes(b"weights")
    settings = emr_settings_from_params({"weights": str(weights)})
    config = dataclasses.replace(config, bucket="fruits-unit")
    plan = build_run_plan(settings, config, dag_id="d", run_id="r1")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket="fruits-unit", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        first = upload_job_package(plan)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="fruits-unit")["Contents"]}
        second = upload_job_package(plan)
    assert keys == {*plan["code_keys"].values(), plan["weights_key"]}
    assert first["uploaded"] == 5
    assert (second["uploaded"], second["skipped"]) == (0, 5)  # deterministic zip: no re-upload


def test_download_results_refuses_incomplete_and_reruns_cleanly(config, tmp_path):
    from moto import mock_aws

    from include.emr import ResultsIncompleteError, download_results

    config = dataclasses.replace(config, bucket="fruits-unit", results_dir=tmp_path / "res")
    plan = build_run_plan(emr_settings_from_params({}), config, dag_id="d", run_id="r1")
    prefix = plan["results_prefix"]
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket="fruits-unit", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        s3.put_object(Bucket="fruits-unit", Key=f"{prefix}/metrics.json", Body=b'{"k": 1}')
        s3.put_object(Bucket="fruits-unit", Key=f"{prefix}/pca/part-0.parquet", Body=b"PAR1")
        with pytest.raises(ResultsIncompleteError, match="no _SUCCESS marker"):
            download_results(plan, cluster_id=None)
        assert not (tmp_path / "res").exists()  # nothing half-written

        s3.put_object(Bucket="fruits-unit", Key=f"{prefix}/_SUCCESS", Body=b"")
        first = download_results(plan, cluster_id=None)
        s3.put_object(Bucket="fruits-unit", Key=f"{prefix}/metrics.json", Body=b'{"k": 2}')
        second = download_results(plan, cluster_id=None)  # a rerun replaces the folder
    assert first == second == plan["results_dir"]
    run_dir = tmp_path / "res" / plan["run_key"]
    assert (run_dir / "metrics.json").read_text() == '{"k": 2}'
    assert (run_dir / "pca" / "part-0.parquet").read_bytes() == b"PAR1"
    assert not (run_dir / "features").exists()
    assert [p.name for p in (tmp_path / "res").iterdir()] == [plan["run_key"]]
