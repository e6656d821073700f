"""Pure builders of the EMR Serverless DAG: worker sizing, plan, costs, report section, and
the application lookup and preflight check against in-process moto."""

from __future__ import annotations

import json

import pytest

from include.capacity.serverless_sizing import WORKER_MEMORY_GB, size_serverless_workers
from include.capacity.worker_memory import JVM_OVERHEAD_MIN_MB, SizingError, python_worker_mb
from include.config import PipelineConfig
from include.costs.serverless import (
    JOB_RUN_FILE,
    estimate_serverless_cost,
    serverless_cost_summary,
)
from include.emr_serverless.plan import (
    CONFIG_TAG,
    SCOPE_TAG,
    build_serverless_run_plan,
    identity_tags,
    job_driver_for,
    spark_submit_parameters,
)
from include.params.job_args import build_job_arguments
from include.params.serverless import serverless_settings_from_params

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
CONFIG = PipelineConfig(bucket="b", prefix="p", region="eu-west-1")


def sizing(**overrides):
    args = {
        "runtime": "litert",
        "batch_size": 64,
        "image_size": 224,
        "executors": 2,
        "executor_vcpu": 4,
        "executor_memory_gb": 16,
        "driver_vcpu": 2,
        "driver_memory_gb": 8,
        "disk_gb": 20,
        **overrides,
    }
    return size_serverless_workers(**args)


# ---------------------------------------------------------------------------- sizing


@pytest.mark.parametrize("vcpu", list(WORKER_MEMORY_GB))
def test_every_allowed_worker_size_fits_heap_and_overhead_exactly(vcpu):
    low, high, step = WORKER_MEMORY_GB[vcpu]
    for memory in range(max(low, 8), high + 1, step):
        try:
            s = sizing(executor_vcpu=vcpu, executor_memory_gb=memory)
        except SizingError:
            continue  # too small for vcpu workers: refused, tested below
        assert s.executor_heap_mb + s.executor_overhead_mb == memory * 1024
        python = vcpu * python_worker_mb("litert", batch_size=64, image_size=224)
        assert s.executor_overhead_mb >= python + JVM_OVERHEAD_MIN_MB


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"executor_vcpu": 3}, "executor_vcpu must be one of 1, 2, 4, 8, 16"),
        ({"executor_memory_gb": 31}, "allows 8-30 GB"),
        ({"executor_vcpu": 16, "executor_memory_gb": 36}, "in steps of 8 GB"),
        ({"driver_memory_gb": 3}, "driver_memory_gb=3"),
        ({"disk_gb": 10}, "worker_disk_gb"),
        ({"runtime": "keras", "executor_memory_gb": 8, "batch_size": 256}, "executor_memory_gb"),
        ({"executors": 0}, "executors must be >= 1"),
    ],
)
def test_sizes_outside_what_aws_allows_are_refused(overrides, message):
    with pytest.raises(SizingError, match=message):
        sizing(**overrides)


def test_maximum_capacity_and_confs_are_exactly_the_run_workers():
    s = sizing(executors=3, executor_vcpu=8, executor_memory_gb=32, disk_gb=50)
    assert s.maximum_capacity() == {"cpu": "26 vCPU", "memory": "104 GB", "disk": "200 GB"}
    conf = s.spark_conf()
    assert conf["spark.executor.instances"] == "3"
    assert conf["spark.executor.cores"] == "8"
    assert conf["spark.default.parallelism"] == str(s.task_slots) == "24"
    assert conf["spark.dynamicAllocation.enabled"] == "false"
    assert conf["spark.emr-serverless.executor.disk"] == "50G"


# ---------------------------------------------------------------------------- plan


def plan_for(**params):
    settings = serverless_settings_from_params(params)
    return build_serverless_run_plan(settings, CONFIG, dag_id="d", run_id=RUN_ID)


def test_application_request_has_backstops_and_run_tags():
    plan = plan_for(idle_timeout_minutes=7, architecture="ARM64")
    app = plan["application"]
    assert app["releaseLabel"] == "emr-7.12.0"
    assert app["type"] == "SPARK"
    assert app["architecture"] == "ARM64"
    assert app["autoStopConfiguration"] == {"enabled": True, "idleTimeoutMinutes": 7}
    assert app["maximumCapacity"]["cpu"] == "10 vCPU"
    assert app["tags"]["run_id"] == RUN_ID  # EMR tag characters only: kept as is
    assert app["tags"][SCOPE_TAG] == "run"
    assert set(identity_tags(app)) == {"Project", SCOPE_TAG, CONFIG_TAG, "dag_id", "run_id"}
    assert len(app["name"]) <= 64


def test_shared_application_is_named_after_its_configuration_not_the_run():
    one = build_serverless_run_plan(
        serverless_settings_from_params({"reuse_application": True}),
        CONFIG,
        dag_id="d",
        run_id="run-1",
    )
    two = build_serverless_run_plan(
        serverless_settings_from_params({"reuse_application": True}),
        CONFIG,
        dag_id="d",
        run_id="run-2",
    )
    bigger = build_serverless_run_plan(
        serverless_settings_from_params({"reuse_application": True, "executors": 4}),
        CONFIG,
        dag_id="d",
        run_id="run-1",
    )
    assert one["application"]["name"] == two["application"]["name"]
    assert one["application_tags"] == two["application_tags"]
    assert "run_id" not in one["application_tags"]
    assert bigger["application"]["name"] != one["application"]["name"]


def test_job_driver_runs_the_cluster_step_arguments_on_the_staged_environment():
    plan = plan_for()
    env = {"spark.archives": "s3://b/env/pyspark_env.tar.gz#environment"}
    driver = job_driver_for(plan, env)["sparkSubmit"]
    assert (
        driver["entryPoint"] == "s3://b/p/runs/manual__2026-01-01T00_00_00_00_00/code/entrypoint.py"
    )
    from include.params.job_args import JobSettings

    assert driver["entryPointArguments"] == build_job_arguments(
        JobSettings(**plan["job"]),
        input_uri=plan["uris"]["input"],
        output_uri="s3://b/p/results",
        run_id=plan["run_key"],
        model_uri=plan["uris"]["model"],
        feature_cache_uri=plan["feature_cache_uri"],
    )
    parts = driver["sparkSubmitParameters"].split(" ")
    assert "spark.archives=s3://b/env/pyspark_env.tar.gz#environment" in parts
    assert (
        "spark.executor.memoryOverhead=" + plan["spark_conf"]["spark.executor.memoryOverhead"]
        in parts
    )
    assert parts[-2:] == ["--py-files", plan["uris"]["py_files"]]
    assert plan["job_run_config"]["executionTimeoutMinutes"] == 60  # mini: 1 h


def test_dataset_read_in_place_becomes_the_input():
    settings = serverless_settings_from_params({})
    plan = build_serverless_run_plan(
        settings, CONFIG, dag_id="d", run_id=RUN_ID, dataset_uri="s3://other/fruits/"
    )
    assert plan["uris"]["input"] == "s3://other/fruits/"
    assert plan["dataset_prefix"] is None


def test_spark_submit_parameters_refuse_whitespace():
    with pytest.raises(ValueError, match="whitespace"):
        spark_submit_parameters({"spark.x": "a b"}, py_files_uri="s3://b/z.zip")


# ---------------------------------------------------------------------------- costs


def test_cost_summary_prices_billed_utilization():
    job_run = {
        "jobRunId": "j",
        "applicationId": "a",
        "state": "SUCCESS",
        "billedResourceUtilization": {"vCPUHour": 2.0, "memoryGBHour": 10.0, "storageGBHour": 5},
    }
    x86 = serverless_cost_summary(job_run, region="us-east-1", architecture="X86_64")
    arm = serverless_cost_summary(job_run, region="us-east-1", architecture="ARM64")
    assert x86["estimated_usd"] == pytest.approx(2 * 0.052624 + 10 * 0.0057785 + 5 * 0.000111)
    assert arm["estimated_usd"] < x86["estimated_usd"]
    # An EU region: us-east-1's figures x its m5.xlarge ratio (ASSUMED, and said so).
    frankfurt = serverless_cost_summary(job_run, region="eu-central-1", architecture="X86_64")
    assert frankfurt["estimated_usd"] == pytest.approx(
        x86["estimated_usd"] * 0.230 / 0.192, rel=1e-5
    )
    assert "eu-central-1 figures: ASSUMED" in frankfurt["price_basis"]
    unknown = serverless_cost_summary(job_run, region="eu-north-1", architecture="RISCV")
    assert unknown["estimated_usd"] is None
    assert "RISCV" in unknown["unpriced"]


def test_estimate_scales_with_images_and_bills_extra_disk():
    s = sizing().as_dict()
    small = estimate_serverless_cost(
        images=100,
        runtime="litert",
        sizing=s,
        region="eu-west-1",
        architecture="X86_64",
        poke_interval_s=30,
    )
    large = estimate_serverless_cost(
        images=100_000,
        runtime="litert",
        sizing=s,
        region="eu-west-1",
        architecture="X86_64",
        poke_interval_s=30,
    )
    disk = estimate_serverless_cost(
        images=100_000,
        runtime="litert",
        sizing=sizing(disk_gb=50).as_dict(),
        region="eu-west-1",
        architecture="X86_64",
        poke_interval_s=30,
    )
    assert small.estimated_usd < large.estimated_usd < disk.estimated_usd
    assert large.featurise_s == pytest.approx(100_000 / (88.0 * 8))
    assert small.storage_gb_hours == 0
    assert disk.billed_storage_gb == 3 * 30
    with pytest.raises(ValueError, match="no EMR Serverless price for architecture 'RISCV'"):
        estimate_serverless_cost(
            images=1,
            runtime="litert",
            sizing=s,
            region="eu-north-1",
            architecture="RISCV",
            poke_interval_s=1,
        )


def _serverless_estimate(region: str, architecture: str = "X86_64"):
    return estimate_serverless_cost(
        images=1000,
        runtime="litert",
        sizing=sizing().as_dict(),
        region=region,
        architecture=architecture,
        poke_interval_s=30,
    )


@pytest.mark.parametrize("architecture", ["X86_64", "ARM64"])
def test_every_allowed_region_estimates_for_both_architectures(architecture):
    from include.config import ALLOWED_REGIONS

    for region in ALLOWED_REGIONS:
        estimate = _serverless_estimate(region, architecture)
        assert estimate.estimated_usd > 0
        assert (estimate.priced_as, estimate.price_warning) == (region, None)
        assert estimate.to_dict()["price_source"].startswith("ASSUMED")


def test_a_region_without_serverless_figures_uses_the_named_fallback(caplog):
    from include.capacity.prices import PRICE_FALLBACK_REGION

    estimate = _serverless_estimate("sa-nowhere-3")
    assert estimate.priced_as == PRICE_FALLBACK_REGION
    assert "sa-nowhere-3" in estimate.price_warning
    expected = _serverless_estimate(PRICE_FALLBACK_REGION).estimated_usd
    assert estimate.estimated_usd == pytest.approx(expected)
    assert "no figures of its own" in estimate.describe()
    assert "no price figures for region 'sa-nowhere-3'" in caplog.text


def test_report_shows_the_serverless_cost_section(tmp_path):
    from include.results.serverless_cost import serverless_cost_section

    assert serverless_cost_section(tmp_path, None) is None
    saved = {
        "jobRun": {
            "jobRunId": "jr1",
            "applicationId": "app1",
            "state": "SUCCESS",
            "billedResourceUtilization": {"vCPUHour": 1.25, "memoryGBHour": 5.5},
        },
        "application": {"architecture": "ARM64"},
        "region": "eu-west-1",
    }
    (tmp_path / JOB_RUN_FILE).write_text(json.dumps(saved))
    html = serverless_cost_section(
        tmp_path,
        {"kind": "emr-serverless", "vcpu_hours": 0.9, "estimated_usd": 0.1, "max_cost_usd": 5},
    )
    assert "jr1" in html
    assert "1.2500" in html
    assert "ARM64" in html
    assert "estimated before the run" in html
    (tmp_path / JOB_RUN_FILE).write_text("{not json")
    assert "cost estimate unavailable" in serverless_cost_section(tmp_path, None)


def test_feature_cache_param_gives_the_job_the_projects_cache():
    def cache_arg(**params):
        driver = job_driver_for(plan_for(**params), {})["sparkSubmit"]
        args = driver["entryPointArguments"]
        return args[args.index("--feature-cache") + 1] if "--feature-cache" in args else None

    assert cache_arg() == "s3://b/p/feature-cache/"
    assert cache_arg(feature_cache=False) is None


# ---------------------------------------------------------------------------- request rules


def _botocore_rule(shape: str) -> dict:
    import botocore.session

    model = botocore.session.get_session().get_service_model("emr-serverless")
    return model.shape_for(shape).metadata


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("manual__2026-12-07T04:13:00.123+00:00", "manual__2026-12-07T04:13:00.123+00:00"),
        ("api run #1 (retry)!", "api run _1 _retry__"),
        ("fräulein-é", "fr_ulein-_"),  # EMR allows any letter; EMR Serverless ASCII only
        ("AWS:reserved", "_WS:reserved"),
        ("x" * 300, "x" * 256),
    ],
)
def test_run_id_tag_values_follow_the_serverless_tag_value_pattern(run_id, expected):
    import re

    rule = _botocore_rule("TagValue")
    plan = build_serverless_run_plan(
        serverless_settings_from_params({}), CONFIG, dag_id="d", run_id=run_id
    )
    for tags in (plan["application"]["tags"], plan["job_run_config"]["tags"], plan["tags"]):
        assert tags["run_id"] == expected
        for value in tags.values():
            assert re.fullmatch(rule["pattern"], value), value
            assert len(value) <= rule["max"]


@pytest.mark.parametrize(
    ("timeout_seconds", "minutes"),
    [(1, 5), (299, 5), (301, 6), (3600, 60), (10**9, 1_000_000)],
)
def test_execution_timeout_is_whole_minutes_within_botocores_bounds(timeout_seconds, minutes):
    rule = _botocore_rule("Duration")
    assert (rule["min"], rule["max"]) == (0, 1_000_000)  # what the code's comment says
    plan = plan_for(job_timeout_seconds=timeout_seconds)
    assert plan["job_run_config"]["executionTimeoutMinutes"] == minutes
