"""The emulator's YARN placement: all granted, partly granted, none (hangs), too large (fails).

Unit tests of :mod:`emr_emulator.yarn` on hand-written RunJobFlow requests and spark-submit
arguments, then the engine: a step that YARN cannot serve hangs until cancelled, one YARN
refuses fails with Spark's message, and (slow) a step on half its executors runs with half
the local slots and says so in its log.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from emr_emulator import yarn
from emr_emulator.mirror import S3Mirror
from emr_emulator.steps import PreparedStep, failure_message, prepare_step, run_process
from emr_emulator.yarn_conf import YarnConfigError, cluster_nodes, size_mb, spark_resources
from tests.emr_emulator.test_emulator import (
    BUCKET,
    JOB,
    _step,
    clients,
    start_cluster,
    step_status,
    wait_for,
)


def request(core: int = 2, instance_type: str = "m5.xlarge", **extra: Any) -> dict[str, Any]:
    return {
        "Instances": {
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": instance_type, "InstanceCount": core},
            ]
        },
        **extra,
    }


def flags(*confs: str, extra: tuple[str, ...] = ()) -> list[str]:
    """spark-submit's options as the project's step has them (client mode on YARN)."""
    args = ["--deploy-mode", "client", "--master", "yarn", *extra]
    for conf in ("spark.dynamicAllocation.enabled=false", *confs):
        args += ["--conf", conf]
    return args


def submit(*confs: str, extra: tuple[str, ...] = ()) -> list[str]:
    """spark-submit's arguments (after ``spark-submit``): options, application, its args."""
    return [*flags(*confs, extra=extra), "s3://b/job.py", "--input", "s3://b/in"]


def step(args: list[str]) -> dict[str, Any]:
    return {"Jar": "command-runner.jar", "Args": ["spark-submit", *args]}


# The project's sizing before the AM fix: one 4-core executor per m5.xlarge taking all of its
# 12288 MB; and after it: 12288 - 896 (the AM's container).
WHOLE_NODE = ("spark.executor.memory=8192m", "spark.executor.memoryOverhead=4096m")
NODE_LESS_AM = ("spark.executor.memory=7296m", "spark.executor.memoryOverhead=4096m")
FOUR_CORES = "spark.executor.cores=4"


def test_all_granted_when_every_node_keeps_room_for_the_am():
    placement = yarn.place_step(
        request(2), step(submit(*NODE_LESS_AM, FOUR_CORES, "spark.executor.instances=2"))
    )
    assert placement is not None
    assert placement.am_node == "core-1"
    assert placement.am_allocation_mb == 896  # 512 + 384, a multiple of 32
    assert placement.executor_allocation_mb == 11392
    assert placement.executors_granted == 2
    assert placement.per_node == {
        "core-1": ["AM 896", "executor 11392"],
        "core-2": ["executor 11392"],
    }
    assert not placement.hangs
    assert placement.local_cores(2) == 2
    assert "executors granted 2 of 2" in placement.log_lines()[-1]


def test_partly_granted_when_the_am_takes_a_whole_share():
    placement = yarn.place_step(
        request(2), step(submit(*WHOLE_NODE, FOUR_CORES, "spark.executor.instances=2"))
    )
    assert placement is not None
    assert (placement.am_node, placement.executors_granted) == ("core-1", 1)
    assert placement.per_node["core-1"] == ["AM 896"]
    assert not placement.hangs
    # Half the executors: half the emulator's slots (never more than were granted).
    assert placement.local_cores(4) == 2
    assert placement.local_cores(16) == 4
    assert placement.local_cores(1) == 1
    lines = placement.log_lines()
    assert lines[0] == (
        "INFO Client: Will allocate AM container, with 896 MB memory including 384 MB overhead"
    )
    assert "executors granted 1 of 2" in lines[2]
    assert lines[3].startswith("WARN emr-emulator YARN: 1 executor container(s) refused")


def test_none_granted_on_one_node_hangs():
    placement = yarn.place_step(
        request(1), step(submit(*WHOLE_NODE, FOUR_CORES, "spark.executor.instances=1"))
    )
    assert placement is not None
    assert (placement.am_node, placement.executors_granted) == ("core-1", 0)
    assert placement.hangs
    assert placement.refused is None
    command = yarn.stand_in_command(placement, "python3")
    assert command is not None
    assert yarn.STARVATION_WARNING in command[-1]


def test_too_large_a_container_is_refused_with_sparks_message():
    placement = yarn.place_step(request(2), step(submit("spark.executor.memory=12g")))
    assert placement is not None
    assert placement.refused == (
        "java.lang.IllegalArgumentException: Required executor memory (12288 MB), offHeap "
        "memory (0) MB, overhead (1228 MB), and PySpark memory (0 MB) is above the max "
        "threshold (12288 MB) of this cluster! Please check the values of "
        "'yarn.scheduler.maximum-allocation-mb' and/or 'yarn.nodemanager.resource.memory-mb'."
    )
    assert not placement.hangs
    assert placement.executors_granted == 0


def test_too_large_an_am_is_refused():
    args = submit(extra=("--driver-memory", "12g"))
    args[1] = "cluster"  # --deploy-mode cluster: the driver runs in the AM container
    placement = yarn.place_step(request(1), step(args))
    assert placement is not None
    assert placement.refused is not None
    assert placement.refused.startswith(
        "java.lang.IllegalArgumentException: Required AM memory (12288+1228 MB) is above the "
        "max threshold (12288 MB)"
    )


def test_hanging_stand_in_runs_until_cancelled(tmp_path):
    placement = yarn.place_step(request(1), step(submit(*WHOLE_NODE, FOUR_CORES)))
    assert placement is not None
    assert placement.hangs
    prepared = PreparedStep(argv=[], env={}, locations=[])
    yarn.apply_placement(prepared, placement, python="python3")
    asked = []

    def should_stop() -> str | None:
        asked.append(time.monotonic())
        return "cancelled" if len(asked) > 10 else None  # ~2 s of polls

    exit_code, stopped = run_process(prepared, workdir=tmp_path, should_stop=should_stop)
    assert stopped == "cancelled"  # it never ended by itself
    assert exit_code != 0
    stderr = (tmp_path / "stderr").read_text()
    assert "executors granted 0 of 2" in stderr


def test_refused_stand_in_fails_with_sparks_message(tmp_path):
    placement = yarn.place_step(request(2), step(submit("spark.executor.memory=12g")))
    assert placement is not None
    prepared = PreparedStep(argv=[], env={}, locations=[])
    yarn.apply_placement(prepared, placement, python="python3")
    exit_code, stopped = run_process(prepared, workdir=tmp_path, should_stop=lambda: None)
    assert (exit_code, stopped) == (1, None)
    message = failure_message((tmp_path / "stderr").read_text(), exit_code)
    assert message.startswith(": java.lang.IllegalArgumentException: Required executor memory")
    assert any("refused by YARN" in r for r in prepared.rewrites)


# ------------------------------------------------------------------- what is asked for


def test_spark_resources_read_flags_confs_and_defaults():
    args = submit(
        "spark.executor.pyspark.memory=512m",
        "spark.memory.offHeap.enabled=true",
        "spark.memory.offHeap.size=1073741824",  # bytes when no unit
        extra=("--executor-memory", "2g", "--num-executors", "3", "--executor-cores", "2"),
    )
    r = spark_resources(args, {"spark.executor.memory": "1g"})  # the step's flag wins
    assert (r.executor_memory_mb, r.executor_overhead_mb) == (2048, 384)
    assert (r.offheap_mb, r.pyspark_mb, r.executor_cores, r.executors) == (1024, 512, 2, 3)
    assert r.executor_request_mb == 2048 + 384 + 1024 + 512
    assert (r.deploy_mode, r.am_memory_mb, r.am_overhead_mb) == ("client", 512, 384)


def test_spark_resources_defaults_are_sparks_with_emrs_dynamic_allocation():
    r = spark_resources(["--master", "yarn", "job.py"], {})
    assert (r.executor_memory_mb, r.executor_cores, r.executors) == (1024, 1, None)
    r = spark_resources(["job.py"], {"spark.dynamicAllocation.maxExecutors": "5"})
    assert r.executors == 5
    r = spark_resources(["job.py"], {"spark.dynamicAllocation.enabled": "false"})
    assert r.executors == 2  # spark.executor.instances' default
    # Under unbounded dynamic allocation, as many as fit are granted.
    placement = yarn.place_step(request(1), step(["--master", "yarn", "job.py"]))
    assert placement is not None
    assert placement.executors_granted == (12288 - 896) // 1408


def test_cluster_mode_am_holds_the_driver():
    args = submit(extra=("--driver-memory", "4g"))
    args[1] = "cluster"
    r = spark_resources(args, {})
    assert (r.am_memory_mb, r.am_overhead_mb) == (4096, 409)


def test_cluster_nodes_from_groups_fleets_and_yarn_site():
    req = request(2, Configurations=[{"Classification": "yarn-site", "Properties": {}}])
    req["Instances"]["InstanceGroups"].insert(  # listed first, placed after the core nodes
        0,
        {
            "InstanceRole": "TASK",
            "InstanceType": "r5.xlarge",
            "InstanceCount": 1,
            "Configurations": [
                {
                    "Classification": "yarn-site",
                    "Properties": {"yarn.nodemanager.resource.memory-mb": "20000"},
                }
            ],
        },
    )
    cluster = cluster_nodes(req)
    assert [(n.name, n.role, n.memory_mb) for n in cluster.nodes] == [
        ("core-1", "CORE", 12288),
        ("core-2", "CORE", 12288),
        ("task-3", "TASK", 20000),
    ]
    assert (cluster.min_allocation_mb, cluster.max_allocation_mb) == (32, 20000)
    fleets = {
        "Instances": {
            "InstanceFleets": [
                {
                    "InstanceFleetType": "MASTER",
                    "TargetOnDemandCapacity": 1,
                    "InstanceTypeConfigs": [{"InstanceType": "m5.xlarge"}],
                },
                {
                    "InstanceFleetType": "CORE",
                    "TargetSpotCapacity": 8,
                    "InstanceTypeConfigs": [{"InstanceType": "m5.2xlarge", "WeightedCapacity": 4}],
                },
            ]
        }
    }
    assert [n.memory_mb for n in cluster_nodes(fleets).nodes] == [24576, 24576]
    legacy = {
        "Instances": {
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "c5.2xlarge",
            "InstanceCount": 3,
        }
    }
    assert len(cluster_nodes(legacy).nodes) == 2


def test_unknown_instance_type_and_bad_sizes_are_refused_clearly():
    with pytest.raises(
        YarnConfigError, match=re.escape("no YARN figures for instance type 'x9.huge'")
    ):
        cluster_nodes(request(2, "x9.huge"))
    with pytest.raises(YarnConfigError, match=re.escape("spark.executor.memory='lots'")):
        spark_resources(["--conf", "spark.executor.memory=lots", "job.py"], {})
    assert [size_mb(v) for v in ("512m", "2g", "2048", "1024k", "1t")] == [
        512,
        2048,
        2048,
        1,
        1024 * 1024,
    ]


def test_steps_that_are_not_yarn_spark_submits_place_nothing():
    assert yarn.place_step(request(), {"Jar": "s3://b/x.jar", "Args": []}) is None
    assert yarn.place_step(request(), step(["--master", "local[2]", "job.py"])) is None


# ------------------------------------------------------------------- through the engine


def one_core_node(instance_type: str) -> dict[str, Any]:
    """``Instances`` of a kept-alive cluster with one core node of ``instance_type``."""
    return {**request(1, instance_type)["Instances"], "KeepJobFlowAliveWhenNoSteps": True}


def _yarn_step(*confs: str, job_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """A step running the emulator tests' JOB (in the bucket) with these ``--conf``."""
    return _step(["spark-submit", *flags(*confs), f"s3://{BUCKET}/job.py", *job_args])


def test_emulated_step_without_executors_hangs_until_cancelled(emr_emulator):
    s3, emr = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="job.py", Body=JOB)
    cluster_id = start_cluster(emr, Instances=one_core_node("m5.xlarge"))
    step_id = emr.add_job_flow_steps(
        JobFlowId=cluster_id, Steps=[_yarn_step(*WHOLE_NODE, FOUR_CORES)]
    )["StepIds"][0]
    wait_for(lambda: step_status(emr, cluster_id, step_id)["State"] == "RUNNING", 30)
    time.sleep(2)
    assert step_status(emr, cluster_id, step_id)["State"] == "RUNNING"  # not ended by itself
    emr.cancel_steps(ClusterId=cluster_id, StepIds=[step_id])
    wait_for(lambda: step_status(emr, cluster_id, step_id)["State"] == "CANCELLED", 30)
    workdir = emr_emulator.settings.data_dir / "steps" / cluster_id / step_id
    assert "executors granted 0 of 2" in (workdir / "stderr").read_text()
    assert "no executor fits: the job waits" in (workdir / "controller").read_text()


def test_emulated_step_too_large_for_yarn_fails_with_sparks_message(emr_emulator):
    _, emr = clients(emr_emulator)
    cluster_id = start_cluster(emr)
    step_id = emr.add_job_flow_steps(
        JobFlowId=cluster_id, Steps=[_yarn_step("spark.executor.memory=16g")]
    )["StepIds"][0]
    wait_for(lambda: step_status(emr, cluster_id, step_id)["State"] == "FAILED", 30)
    details = step_status(emr, cluster_id, step_id)["FailureDetails"]
    assert "Required executor memory (16384 MB)" in details["Message"]
    assert "max threshold (12288 MB)" in details["Message"]


def test_emulated_step_on_an_unknown_instance_type_fails_clearly(emr_emulator):
    _, emr = clients(emr_emulator)
    cluster_id = start_cluster(emr, Instances=one_core_node("z9.mega"))
    step_id = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[_yarn_step()])["StepIds"][0]
    wait_for(lambda: step_status(emr, cluster_id, step_id)["State"] == "FAILED", 30)
    message = step_status(emr, cluster_id, step_id)["FailureDetails"]["Message"]
    assert "no YARN figures for instance type 'z9.mega'" in message


@pytest.mark.slow
def test_emulated_step_on_half_its_executors_runs_with_half_the_slots(emr_emulator):
    emr_emulator.settings.local_cores = 2
    s3, emr = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="job.py", Body=JOB)
    s3.put_object(Bucket=BUCKET, Key="in/0.txt", Body=b"x\ny\n")
    cluster_id = start_cluster(emr)  # 2 x m5.xlarge core nodes
    half = _yarn_step(
        *WHOLE_NODE,
        FOUR_CORES,
        "spark.executor.instances=2",
        job_args=("count", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/half"),
    )
    step_id = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[half])["StepIds"][0]
    wait_for(lambda: step_status(emr, cluster_id, step_id)["State"] == "COMPLETED", 180)
    logs = f"logs/{cluster_id}/steps/{step_id}"

    def log(name: str) -> str:
        body = s3.get_object(Bucket=BUCKET, Key=f"{logs}/{name}.gz")["Body"].read()
        return gzip.decompress(body).decode()

    stderr, controller = log("stderr"), log("controller")
    assert "executors granted 1 of 2" in stderr
    assert "1 executor container(s) refused" in stderr
    assert "--master yarn -> --master local[1]" in controller
    assert "rows 2" in log("stdout")


def test_prepare_step_is_unchanged_without_placement(tmp_path: Path):
    mirror = S3Mirror(tmp_path / "s3", None)
    prepared = prepare_step(
        step(submit()),
        configurations=[],
        mirror=mirror,
        conf_dir=tmp_path / "conf",
        local_cores=3,
    )
    assert prepared.stderr_head == []
    assert "local[3]" in prepared.argv


def test_explain_cli_prints_the_placement(tmp_path, capsys):
    (tmp_path / "request.json").write_text(json.dumps(request(1)))
    (tmp_path / "step.json").write_text(
        json.dumps({"HadoopJarStep": step(submit(*WHOLE_NODE, FOUR_CORES))})
    )
    assert yarn.main([str(tmp_path / "request.json"), str(tmp_path / "step.json")]) == 0
    out = capsys.readouterr().out
    assert "executors granted 0 of 2" in out
    assert out.rstrip().endswith("outcome: HANGS (no executor can start)")
    assert yarn.main([]) == 2
