"""The offline EMR through the AWS API: life cycle, bootstrap checks, idle timeout, steps.

Each test drives the emulator (the ``emr_emulator`` fixture, in this process on 127.0.0.1)
with a plain boto3 client, as the DAG does, and asserts what the API and S3 show.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from emr_emulator.mirror import S3Mirror, parse_s3_uri
from emr_emulator.steps import StepRejected, failure_message, find_spark_submit, prepare_step

BUCKET = "emu-test-bucket"
REGION = "eu-west-1"
GOOD_BOOTSTRAP = b"#!/usr/bin/env bash\nset -euo pipefail\necho installing\n"


def client_kwargs(emulator) -> dict[str, str]:
    """boto3 client arguments for the emulator (fake keys: moto accepts any)."""
    return {
        "endpoint_url": emulator.endpoint_url,
        "region_name": REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }


def clients(emulator) -> tuple[Any, Any]:
    kwargs = client_kwargs(emulator)
    s3 = boto3.client("s3", **kwargs)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return s3, boto3.client("emr", **kwargs)


def wait_for(predicate: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def start_cluster(emr, *, bootstrap: str | None = None, **overrides: Any) -> str:
    request: dict[str, Any] = {
        "Name": "emu-test",
        "ReleaseLabel": "emr-7.12.0",
        "LogUri": f"s3://{BUCKET}/logs/",
        "Instances": {
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
            ],
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        "JobFlowRole": "EMR_EC2_DefaultRole",
        "ServiceRole": "EMR_DefaultRole",
    }
    if bootstrap:
        request["BootstrapActions"] = [
            {"Name": "install", "ScriptBootstrapAction": {"Path": bootstrap, "Args": []}}
        ]
    request.update(overrides)
    return emr.run_job_flow(**request)["JobFlowId"]


def status(emr, cluster_id: str) -> dict[str, Any]:
    return emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]


def states_seen(emr, cluster_id: str, until: tuple[str, ...], timeout: float = 30) -> list[str]:
    seen: list[str] = []

    def done() -> bool:
        state = status(emr, cluster_id)["State"]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state in until

    wait_for(done, timeout, f"{cluster_id} to reach {until}")
    return seen


# ---------------------------------------------------------------------------- life cycle


def test_cluster_goes_through_emr_states_with_timestamps(emr_emulator):
    s3, emr = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="code/bootstrap.sh", Body=GOOD_BOOTSTRAP)
    cluster_id = start_cluster(emr, bootstrap=f"s3://{BUCKET}/code/bootstrap.sh")

    first = status(emr, cluster_id)
    assert first["State"] == "STARTING"  # not WAITING at once, as plain moto has it
    assert "ReadyDateTime" not in first["Timeline"]
    assert states_seen(emr, cluster_id, ("WAITING",)) == ["STARTING", "BOOTSTRAPPING", "WAITING"]
    ready = status(emr, cluster_id)["Timeline"]
    assert ready["ReadyDateTime"] >= ready["CreationDateTime"]
    assert "EndDateTime" not in ready

    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    assert status(emr, cluster_id)["State"] == "TERMINATING"
    assert states_seen(emr, cluster_id, ("TERMINATED",)) == ["TERMINATING", "TERMINATED"]
    final = status(emr, cluster_id)
    assert final["StateChangeReason"]["Code"] == "USER_REQUEST"
    assert final["Timeline"]["EndDateTime"] >= ready["ReadyDateTime"]
    groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    assert {g["Status"]["State"] for g in groups} == {"ENDED"}
    with pytest.raises(ClientError, match="ValidationException"):
        emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[_step(["spark-submit", "x.py"])])


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (None, "failed attempting to download bootstrap action 1 file from S3"),
        (b"#!/bin/bash\nif then fi (\n", "bootstrap action 1 returned a non-zero return code"),
    ],
    ids=["missing", "bad-syntax"],
)
def test_bootstrap_failure_ends_cluster_with_errors(emr_emulator, script, message):
    s3, emr = clients(emr_emulator)
    if script is not None:
        s3.put_object(Bucket=BUCKET, Key="code/bootstrap.sh", Body=script)
    cluster_id = start_cluster(emr, bootstrap=f"s3://{BUCKET}/code/bootstrap.sh")
    seen = states_seen(emr, cluster_id, ("TERMINATED_WITH_ERRORS", "WAITING"))
    assert "WAITING" not in seen
    reason = status(emr, cluster_id)["StateChangeReason"]
    assert reason["Code"] == "BOOTSTRAP_FAILURE"
    assert message in reason["Message"]


def test_bootstrap_argument_in_s3_must_exist(emr_emulator):
    s3, emr = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="code/bootstrap.sh", Body=GOOD_BOOTSTRAP)
    cluster_id = start_cluster(
        emr,
        BootstrapActions=[
            {
                "Name": "install",
                "ScriptBootstrapAction": {
                    "Path": f"s3://{BUCKET}/code/bootstrap.sh",
                    "Args": [f"s3://{BUCKET}/code/requirements.txt"],
                },
            }
        ],
    )
    states_seen(emr, cluster_id, ("TERMINATED_WITH_ERRORS",))
    assert (
        "requirements.txt does not exist" in status(emr, cluster_id)["StateChangeReason"]["Message"]
    )


def test_idle_timeout_terminates_a_waiting_cluster(emr_emulator):
    _, emr = clients(emr_emulator)
    emr_emulator.settings.idle_scale = 0.02  # 60 s of EMR idle time -> 1.2 s
    cluster_id = start_cluster(emr, AutoTerminationPolicy={"IdleTimeout": 60})
    assert emr.get_auto_termination_policy(ClusterId=cluster_id)["AutoTerminationPolicy"] == {
        "IdleTimeout": 60
    }
    seen = states_seen(emr, cluster_id, ("TERMINATED",))
    assert seen[-3:] == ["WAITING", "TERMINATING", "TERMINATED"]
    reason = status(emr, cluster_id)["StateChangeReason"]
    assert "idle for longer than its auto-termination IdleTimeout (60 s)" in reason["Message"]


def test_cluster_without_keep_alive_ends_when_it_has_no_step(emr_emulator):
    _, emr = clients(emr_emulator)
    cluster_id = start_cluster(
        emr,
        Instances={
            "InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}
            ],
            "KeepJobFlowAliveWhenNoSteps": False,
        },
    )
    states_seen(emr, cluster_id, ("TERMINATED",))
    assert status(emr, cluster_id)["StateChangeReason"]["Code"] == "ALL_STEPS_COMPLETED"


def _step(args: list[str], *, on_failure: str = "CONTINUE", jar: str = "command-runner.jar"):
    return {
        "Name": "step",
        "ActionOnFailure": on_failure,
        "HadoopJarStep": {"Jar": jar, "Args": args},
    }


def step_status(emr, cluster_id: str, step_id: str) -> dict[str, Any]:
    return emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]


def test_pending_step_waits_for_the_cluster_and_can_be_cancelled(emr_emulator):
    _, emr = clients(emr_emulator)
    emr_emulator.settings.start_s = 3600  # stays STARTING: the step cannot start
    cluster_id = start_cluster(emr)
    (step_id,) = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[_step(["spark-submit"])])[
        "StepIds"
    ]
    assert step_status(emr, cluster_id, step_id)["State"] == "PENDING"
    assert status(emr, cluster_id)["State"] == "STARTING"  # moto would say RUNNING
    info = emr.cancel_steps(ClusterId=cluster_id, StepIds=[step_id])["CancelStepsInfoList"]
    assert info == [{"StepId": step_id, "Status": "SUBMITTED", "Reason": ""}]
    assert step_status(emr, cluster_id, step_id)["State"] == "CANCELLED"
    again = emr.cancel_steps(ClusterId=cluster_id, StepIds=[step_id])["CancelStepsInfoList"]
    assert again[0]["Status"] == "FAILED"


def test_step_that_is_not_spark_submit_fails_with_details(emr_emulator):
    s3, emr = clients(emr_emulator)
    cluster_id = start_cluster(emr)
    steps = [_step(["bash", "-c", "rm -rf /"]), _step(["x"], jar="s3://b/custom.jar")]
    ids = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=steps)["StepIds"]
    for step_id in ids:
        wait_for(lambda s=step_id: step_status(emr, cluster_id, s)["State"] == "FAILED")
    details = step_status(emr, cluster_id, ids[0])["FailureDetails"]
    assert "spark-submit steps only" in details["Message"]
    assert details["LogFile"] == f"s3://{BUCKET}/logs/{cluster_id}/steps/{ids[0]}/stderr.gz"
    body = s3.get_object(Bucket=BUCKET, Key=details["LogFile"].split("/", 3)[3])["Body"].read()
    assert b"spark-submit steps only" in gzip.decompress(body)
    assert (
        "command-runner.jar steps only"
        in (step_status(emr, cluster_id, ids[1])["FailureDetails"]["Message"])
    )
    assert status(emr, cluster_id)["State"] == "WAITING"  # CONTINUE: the cluster stays up


# ---------------------------------------------------------------------------- rewrites


def test_prepare_step_rewrites_master_s3_and_python_only(tmp_path):
    mirror = S3Mirror(tmp_path / "s3", s3_client=None)
    args = [
        "spark-submit",
        "--deploy-mode",
        "client",
        "--master",
        "yarn",
        "--conf",
        "spark.pyspark.python=/usr/bin/python3.11",
        "--conf",
        "spark.yarn.dist.archives=s3a://b/env.tar.gz#env",
        "--files",
        "s3://b/code/model.onnx,s3://b/code/labels.txt",
        "--py-files",
        "s3://b/code/spark_jobs.zip",
        "s3://b/code/entrypoint.py",
        "--input",
        "s3://b/data/packed/",
        "--some-new-flag",
        "7",
    ]
    prepared = prepare_step(
        {"Jar": "command-runner.jar", "Args": args},
        configurations=[
            {
                "Classification": "spark-defaults",
                "Properties": {"spark.pyspark.python": "/usr/bin/python3.11", "spark.x": "1"},
            },
            {
                "Classification": "spark-env",
                "Configurations": [{"Classification": "export", "Properties": {"FOO": "bar"}}],
            },
        ],
        mirror=mirror,
        conf_dir=tmp_path / "conf",
        local_cores=2,
        python="/venv/bin/python",
        base_env={},
    )
    root = f"file://{tmp_path / 's3'}"
    assert prepared.argv == [
        find_spark_submit("/venv/bin/python"),  # no such venv: pyspark's own spark-submit
        "--deploy-mode",
        "client",
        "--master",
        "local[2]",
        "--conf",
        "spark.pyspark.python=/venv/bin/python",
        "--conf",
        f"spark.yarn.dist.archives={root}/b/env.tar.gz#env",
        "--files",
        f"{root}/b/code/model.onnx,{root}/b/code/labels.txt",
        "--py-files",
        f"{root}/b/code/spark_jobs.zip",
        f"{root}/b/code/entrypoint.py",
        "--input",
        f"{root}/b/data/packed/",
        "--some-new-flag",
        "7",
    ]
    assert Path(prepared.argv[0]).is_file()
    assert {loc.key for loc in prepared.locations} == {
        "env.tar.gz",
        "code/model.onnx",
        "code/labels.txt",
        "code/spark_jobs.zip",
        "code/entrypoint.py",
        "data/packed/",
    }
    assert prepared.env["PYSPARK_PYTHON"] == "/venv/bin/python"
    assert prepared.env["FOO"] == "bar"
    defaults = (tmp_path / "conf" / "spark-defaults.conf").read_text()
    assert "spark.pyspark.python /venv/bin/python\n" in defaults
    assert "spark.x 1\n" in defaults
    assert "spark.driver.bindAddress 127.0.0.1\n" in defaults


@pytest.mark.parametrize(
    "hadoop_jar_step",
    [{"Jar": "s3://b/my.jar", "Args": []}, {"Jar": "command-runner.jar", "Args": ["hive"]}],
)
def test_prepare_step_refuses_what_it_cannot_run(tmp_path, hadoop_jar_step):
    with pytest.raises(StepRejected, match="only"):
        prepare_step(
            hadoop_jar_step,
            configurations=[],
            mirror=S3Mirror(tmp_path, None),
            conf_dir=tmp_path / "c",
            local_cores=1,
        )


def test_failure_message_prefers_the_jobs_own_error_line():
    output = "INFO a\nTraceback (most recent call last):\n  File x\nValueError: bad\n"
    assert failure_message(output, 1) == "ValueError: bad"
    assert failure_message(output + "error: no image decodes\nINFO bye\n", 2) == (
        "error: no image decodes"
    )
    assert failure_message("INFO only\n", 137) == "the step's command exited with code 137"


def test_mirror_round_trip_skips_checksums_and_mirrors_deletes(emr_emulator, tmp_path):
    s3, _ = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="data/a.txt", Body=b"a")
    s3.put_object(Bucket=BUCKET, Key="data/old.txt", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="data-other/x.txt", Body=b"not mine")
    mirror = S3Mirror(tmp_path / "m", s3)
    location = parse_s3_uri(f"s3://{BUCKET}/data/")
    assert mirror.download([location]).downloaded == 2
    base = tmp_path / "m" / BUCKET
    assert not (base / "data-other").exists()
    before = mirror.snapshot([BUCKET])
    (base / "data" / "out").mkdir()
    (base / "data" / "out" / "part-0.parquet").write_bytes(b"PAR1")
    (base / "data" / "out" / ".part-0.parquet.crc").write_bytes(b"crc")
    (base / "data" / "old.txt").unlink()
    report = mirror.upload_changes(before, [BUCKET])
    assert (report.uploaded, report.deleted) == (1, 1)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {"data/a.txt", "data/out/part-0.parquet", "data-other/x.txt"}
    s3.delete_object(Bucket=BUCKET, Key="data/a.txt")  # gone in S3 -> gone in the mirror
    assert mirror.download([location]).deleted == 1
    assert not (base / "data" / "a.txt").exists()


# ---------------------------------------------------------------------------- real steps

JOB = b"""
import os, sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
mode, src, dst = sys.argv[1:4]
if mode == "sleep":
    open(dst, "w").write(str(os.getpid()))
    time.sleep(600)
rows = spark.read.text(src).count()
print("rows", rows)
spark.createDataFrame([(rows,)], "n int").write.mode("overwrite").parquet(dst)
if mode == "fail":
    print("error: asked to fail after writing", file=sys.stderr)
    sys.exit(3)
"""


def _spark_step(mode: str, src: str, dst: str, *, on_failure: str = "CONTINUE") -> dict:
    return _step(
        [
            "spark-submit",
            "--deploy-mode",
            "client",
            "--master",
            "yarn",
            "--conf",
            "spark.pyspark.python=/usr/bin/python3.11",
            f"s3://{BUCKET}/code/job.py",
            mode,
            src,
            dst,
        ],
        on_failure=on_failure,
    )


def _gz(s3, key: str) -> str:
    return gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode()


@pytest.mark.slow
def test_spark_steps_run_for_real_one_at_a_time(emr_emulator):
    s3, emr = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=JOB)
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"in/{i}.txt", Body=b"x\ny\n")
    cluster_id = start_cluster(emr)
    steps = [
        _spark_step("ok", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/ok"),
        _spark_step(
            "fail", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/bad", on_failure="TERMINATE_CLUSTER"
        ),
    ]
    ok_id, bad_id = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=steps)["StepIds"]
    wait_for(lambda: step_status(emr, cluster_id, ok_id)["State"] == "RUNNING", 30)
    assert step_status(emr, cluster_id, bad_id)["State"] == "PENDING"  # one at a time
    assert status(emr, cluster_id)["State"] == "RUNNING"
    states_seen(emr, cluster_id, ("TERMINATED_WITH_ERRORS",), timeout=180)

    assert step_status(emr, cluster_id, ok_id)["State"] == "COMPLETED"
    failed = step_status(emr, cluster_id, bad_id)
    assert failed["State"] == "FAILED"
    assert failed["FailureDetails"]["Message"] == "error: asked to fail after writing"
    assert "exited with code 3" in failed["FailureDetails"]["Reason"]
    assert status(emr, cluster_id)["StateChangeReason"]["Code"] == "STEP_FAILURE"

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    written = {k for k in keys if k.startswith("out/ok/")}
    assert "out/ok/_SUCCESS" in written
    assert any(k.endswith(".parquet") for k in written)
    assert not [k for k in keys if k.endswith(".crc") or "_temporary" in k]
    logs = f"logs/{cluster_id}/steps/{ok_id}"
    assert "rows 6" in _gz(s3, f"{logs}/stdout.gz")
    controller = _gz(s3, f"{logs}/controller.gz")
    assert "--master yarn -> --master local[2]" in controller
    assert "(node Python)" in controller
    assert "INFO" in _gz(s3, f"{logs}/stderr.gz")  # the JVM's log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent, the emulator, reaps it).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
def test_cancel_and_terminate_kill_the_running_job(emr_emulator, tmp_path):
    s3, emr = clients(emr_emulator)
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=JOB)
    cluster_id = start_cluster(emr)
    pid_files = [tmp_path / "first.pid", tmp_path / "second.pid"]
    steps = [_spark_step("sleep", "unused", str(path)) for path in pid_files]
    first, second = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=steps)["StepIds"]

    pid = int(wait_for(lambda: pid_files[0].is_file() and pid_files[0].read_text(), 90))
    info = emr.cancel_steps(ClusterId=cluster_id, StepIds=[first])["CancelStepsInfoList"]
    assert info[0]["Status"] == "SUBMITTED"
    wait_for(lambda: step_status(emr, cluster_id, first)["State"] == "CANCELLED", 30)
    wait_for(lambda: not _alive(pid), 10, "the cancelled job's Python driver to exit")

    pid = int(wait_for(lambda: pid_files[1].is_file() and pid_files[1].read_text(), 90))
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    states_seen(emr, cluster_id, ("TERMINATED",), timeout=30)
    assert step_status(emr, cluster_id, second)["State"] == "CANCELLED"
    wait_for(lambda: not _alive(pid), 10, "the job's Python driver to exit")
