"""Pure EMR builders, the run plan, cluster lookup by tag and the failed-step report."""

from __future__ import annotations

import dataclasses
import gzip
import shutil

import boto3
import pytest

from include.capacity.instance_types import INSTANCE_TYPES
from include.config import PROJECT_TAG, PipelineConfig
from include.emr.clusters import find_clusters
from include.emr.logs import describe_step_failure, step_stderr_uri
from include.emr.plan import (
    REQUEST_DIGEST_TAG,
    build_job_flow_overrides,
    build_run_plan,
    build_spark_step,
    request_digest,
)
from include.emr_common.logs import redact
from include.emr_common.plan import run_tags, tag_value
from include.params.cluster import emr_settings_from_params
from include.params.job_args import safe_run_id
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


def test_security_configuration_is_named_only_when_set(plan, config):
    from dataclasses import replace

    assert "SecurityConfiguration" not in plan["job_flow_overrides"]  # default: none
    settings = emr_settings_from_params({"weights": "none", "core_nodes": 3})
    encrypted = build_run_plan(
        settings,
        replace(config, emr_security_configuration="fruits-features-at-rest"),
        dag_id="fruits_emr_pipeline",
        run_id=RUN_ID,
    )["job_flow_overrides"]
    assert encrypted["SecurityConfiguration"] == "fruits-features-at-rest"
    # Another request: another digest, so an old cluster without it is not reused.
    digests = [
        {t["Key"]: t["Value"] for t in o["Tags"]}[REQUEST_DIGEST_TAG]
        for o in (plan["job_flow_overrides"], encrypted)
    ]
    assert digests[0] != digests[1]


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
    digest = tags.pop(REQUEST_DIGEST_TAG)
    assert tags == {
        "Project": PROJECT_TAG,
        "dag_id": "fruits_emr_pipeline",
        "run_id": RUN_ID,
        # AmazonEMRServicePolicy_v2 acts only on resources tagged so (CreateInTaggedNetwork).
        "for-use-with-amazon-emr-managed-policies": "true",
    }
    assert digest == request_digest(overrides)
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


def test_step_passes_the_clusters_slots_and_pins_its_executors(plan):
    args = plan["steps"][0]["HadoopJarStep"]["Args"]
    entry = "s3://b/" + plan["code_keys"]["entry_script"]
    submit, job_args = args[: args.index(entry)], args[args.index(entry) + 1 :]
    # Default instance type with 3 core nodes: 3 x its vCPUs, the executors fixed
    # (include/capacity/cluster_sizing.py), not grown by dynamic allocation while the job starts.
    executors = plan["executors"]
    vcpus = INSTANCE_TYPES[executors["instance_type"]].vcpus
    assert executors["task_slots"] == 3 * vcpus
    assert job_args[job_args.index("--task-slots") + 1] == str(executors["task_slots"])
    confs = {submit[i + 1] for i, a in enumerate(submit) if a == "--conf"}
    assert {
        "spark.dynamicAllocation.enabled=false",
        f"spark.executor.instances={executors['executors']}",
        f"spark.executor.cores={executors['executor_cores']}",
        f"spark.default.parallelism={3 * vcpus}",
    } <= confs


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
    # The local copy's folder names the DAG (include.params.run_paths.run_results_dir).
    assert plan["results_dir"] == str(config.results_dir / "fruits_emr_pipeline" / rid)


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
    from include.emr_common.operators import _as_bool

    assert _as_bool(value) is expected


def test_upload_job_package_uploads_code_and_local_weights(config, tmp_path):
    from moto import mock_aws

    from include.emr_common.transfer import upload_job_package

    weights = tmp_path / "mobilenet.h5"
    weights.write_bytes(b"weights")
    # keras: the weights file itself is what the nodes load (no converted model).
    settings = emr_settings_from_params({"weights": str(weights), "runtime": "keras"})
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

    from include.emr_common.transfer import ResultsIncompleteError, download_results

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
    run_dir = tmp_path / "res" / "d" / plan["run_key"]
    assert (run_dir / "metrics.json").read_text() == '{"k": 2}'
    assert (run_dir / "pca" / "part-0.parquet").read_bytes() == b"PAR1"
    assert not (run_dir / "features").exists()
    assert [p.name for p in (tmp_path / "res" / "d").iterdir()] == [plan["run_key"]]


def test_the_step_runs_the_staged_model_of_a_fast_runtime(config):
    fast = build_run_plan(emr_settings_from_params({}), config, dag_id="d", run_id="r1")
    args = fast["steps"][0]["HadoopJarStep"]["Args"]
    model_uri = f"s3://{config.bucket}/{fast['code_keys']['model']}"
    assert args[args.index("--runtime") + 1] == "litert"
    assert args[args.index("--model") + 1] == model_uri
    assert fast["code_keys"]["model"].startswith(fast["code_keys"]["py_files"].rsplit("/", 1)[0])
    keras = build_run_plan(
        emr_settings_from_params({"runtime": "keras"}), config, dag_id="d", run_id="r1"
    )
    args = keras["steps"][0]["HadoopJarStep"]["Args"]
    assert args[args.index("--runtime") + 1] == "keras"
    assert "--model" not in args
    assert "model" not in keras["code_keys"]


@pytest.mark.slow  # converts MobileNetV2 once (TensorFlow in a subprocess)
def test_the_model_is_converted_and_uploaded_once_then_copied_per_run(config, tmp_path):
    from moto import mock_aws

    from include.emr_common.transfer import upload_job_package
    from spark_jobs.runtimes import ModelSpec, check_model

    config = dataclasses.replace(config, bucket="fruits-unit")
    settings = emr_settings_from_params({"weights": "none", "image_size": 32})
    plans = [build_run_plan(settings, config, dag_id="d", run_id=r) for r in ("r1", "r2")]
    cache = tmp_path / "cache"
    with mock_aws(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRUITS_MODEL_CACHE", str(cache))
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(
            Bucket="fruits-unit", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        first = upload_job_package(plans[0])["model"]
        second = upload_job_package(plans[1])["model"]
        shutil.rmtree(cache)  # a fresh Airflow worker: S3's copy is enough
        third = upload_job_package(plans[1])["model"]
        staged = {
            run: s3.get_object(Bucket="fruits-unit", Key=plan["code_keys"]["model"])
            for run, plan in zip(("r1", "r2"), plans, strict=True)
        }
        cached = s3.list_objects_v2(Bucket="fruits-unit", Prefix=plans[0]["models_prefix"])
        body = staged["r2"]["Body"].read()
    assert (first["converted"], first["uploaded"]) == (True, True)
    assert (second["converted"], second["uploaded"]) == (False, False)
    assert (third["converted"], third["uploaded"]) == (False, False)
    assert first["cache_uri"] == second["cache_uri"]
    assert [o["Key"] for o in cached["Contents"]] == [first["cache_uri"].split("/", 3)[3]]
    assert all(o["ServerSideEncryption"] == "AES256" for o in staged.values())
    spec = ModelSpec("litert", "none", "none-seed0", 32)
    assert check_model(body, spec, origin="staged")  # the job's own check accepts it


def test_v2_policy_tag_is_on_every_cluster_even_with_extra_tags(config):
    config = dataclasses.replace(
        config, extra_tags={"for-use-with-amazon-emr-managed-policies": "false", "Team": "x"}
    )
    plan = build_run_plan(emr_settings_from_params({}), config, dag_id="d", run_id="r")
    tags = {t["Key"]: t["Value"] for t in plan["job_flow_overrides"]["Tags"]}
    assert tags["for-use-with-amazon-emr-managed-policies"] == "true"  # not overridable
    assert tags["Team"] == "x"


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("manual__2026-01-02T03:04:05.678+00:00", "manual__2026-01-02T03:04:05.678+00:00"),
        ("api run #1 (retry)!", "api run _1 _retry__"),
        ('quo"te*s?', "quo_te_s_"),
        ("AWS:reserved", "_WS:reserved"),
        ("fräulein-é", "fräulein-é"),  # letters of any language are allowed
        ("x" * 300, "x" * 256),
    ],
)
def test_run_id_tag_values_are_what_emr_accepts(run_id, expected):
    assert tag_value(run_id) == expected
    assert run_tags(dag_id="d", run_id=run_id)["run_id"] == expected


def test_run_with_odd_run_id_creates_a_cluster_found_by_its_tags(config):
    """RunJobFlow (moto validates tag shapes only) gets sanitized tags the lookup agrees on."""
    from moto import mock_aws

    run_id = "api run #1 (retry)!"
    plan = build_run_plan(emr_settings_from_params({}), config, dag_id="d", run_id=run_id)
    with mock_aws():
        emr = boto3.client("emr", region_name=REGION)
        cluster_id = emr.run_job_flow(
            **{**plan["job_flow_overrides"], "JobFlowRole": "r", "ServiceRole": "s"}
        )["JobFlowId"]
        found = find_clusters(emr, tags=run_tags(dag_id="d", run_id=run_id))
    assert [c["Id"] for c in found] == [cluster_id]


def test_request_digest_ignores_tags_and_changes_with_the_request(config):
    settings = emr_settings_from_params({})
    kwargs = {"name": "n", "bootstrap_uri": "s3://b/x", "requirements_uri": "s3://b/r"}
    a = build_job_flow_overrides(settings, config, tags={"a": "1"}, **kwargs)
    b = build_job_flow_overrides(settings, config, tags={"a": "2"}, **kwargs)
    other_subnet = dataclasses.replace(config, subnet_id="subnet-2")
    c = build_job_flow_overrides(settings, other_subnet, tags={"a": "1"}, **kwargs)
    assert request_digest(a) == request_digest(b) != request_digest(c)


def test_run_is_active_asks_airflow_and_protects_on_doubt():
    from include.emr.clusters import run_is_active

    cluster = {
        "Id": "j-1",
        "Tags": [{"Key": "dag_id", "Value": "d"}, {"Key": "run_id", "Value": "r"}],
    }

    def state(value):
        return lambda dag_id, run_id: value

    def raising(message):
        def lookup(dag_id, run_id):
            raise RuntimeError(message)

        return lookup

    assert run_is_active(cluster, state("running"), log=lambda _: None)
    assert run_is_active(cluster, state("DagRunState.QUEUED"), log=lambda _: None)
    assert not run_is_active(cluster, state("failed"), log=lambda _: None)
    assert not run_is_active(cluster, raising("404: DagRun not found"), log=lambda _: None)
    assert run_is_active(cluster, raising("connection reset"), log=lambda _: None)
    assert not run_is_active({"Id": "j-2", "Tags": []}, state("running"), log=lambda _: None)


def test_the_step_reads_and_fills_the_feature_cache_unless_turned_off(config):
    on = build_run_plan(emr_settings_from_params({}), config, dag_id="d", run_id="r1")
    args = on["steps"][0]["HadoopJarStep"]["Args"]
    assert args[args.index("--feature-cache") + 1] == "s3://b/p/feature-cache/"
    assert config.feature_cache_uri.startswith(config.s3_base + "/")  # the policy's prefix
    off = build_run_plan(
        emr_settings_from_params({"feature_cache": False}), config, dag_id="d", run_id="r1"
    )
    assert "--feature-cache" not in off["steps"][0]["HadoopJarStep"]["Args"]
