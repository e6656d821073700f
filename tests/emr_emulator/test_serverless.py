"""EMR Serverless in the emulator, through boto3's ``emr-serverless`` client as the DAG uses it:
application and job-run states, real Spark job runs, failures, cancel, timeout, auto-stop, and
the billing arithmetic."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emr_emulator.mirror import S3Mirror
from emr_emulator.serverless_jobs import (
    Worker,
    prepare_job_run,
    requested_workers,
    resource_utilization,
    size_gb,
)
from emr_emulator.steps import StepRejected
from tests.emr_emulator.test_emulator import BUCKET, JOB, REGION, _alive, wait_for

ROLE = "arn:aws:iam::123456789012:role/EMRServerlessJobRole"
ENV_KEY = "p/serverless-env/abc/pyspark_env.tar.gz"
DAG_SIZES = {
    "spark.driver.cores": "2",
    "spark.driver.memory": "4g",
    "spark.executor.cores": "4",
    "spark.executor.memory": "8g",
    "spark.executor.instances": "2",
    "spark.dynamicAllocation.maxExecutors": "2",
}


@pytest.fixture
def aws(emr_emulator) -> tuple[Any, Any]:
    """(s3, emr-serverless) clients of the emulator, the bucket made, short job queues."""
    emr_emulator.settings.app_create_s = 0.3
    emr_emulator.settings.job_queue_s = 0.1
    s3 = emr_emulator.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return s3, emr_emulator.client("emr-serverless")


def app_state(sl, app_id: str) -> str:
    return sl.get_application(applicationId=app_id)["application"]["state"]


def run_of(sl, app_id: str, run_id: str) -> dict[str, Any]:
    return sl.get_job_run(applicationId=app_id, jobRunId=run_id)["jobRun"]


def states_until(read, until: tuple[str, ...], timeout: float = 30) -> list[str]:
    seen: list[str] = []

    def done() -> bool:
        state = read()
        if not seen or seen[-1] != state:
            seen.append(state)
        return state in until

    wait_for(done, timeout, f"a state in {until}")
    return seen


def create_app(sl, **extra: Any) -> str:
    return sl.create_application(name="fruits", releaseLabel="emr-7.12.0", type="SPARK", **extra)[
        "applicationId"
    ]


SLEEP_JOB = b"""
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(600)
"""
"""Sleeps in the Python driver (no SparkSession: it is there within seconds)."""


def env_tarball(*, with_python: bool = True) -> bytes:
    """A packed-environment stand-in: only its layout matters to the emulator."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        names = ["bin/python", "lib/python3.11/site-packages/numpy/__init__.py"]
        for name in names if with_python else names[1:]:
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"#\n"))
    return buffer.getvalue()


def dag_parameters(env_uri: str | None = f"s3://{BUCKET}/{ENV_KEY}") -> str:
    """sparkSubmitParameters the way the Serverless DAG sends them."""
    conf = dict(DAG_SIZES)
    if env_uri:
        conf.update(
            {
                "spark.archives": f"{env_uri}#environment",
                "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
                "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
                "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
            }
        )
    return " ".join(f"--conf {k}={v}" for k, v in conf.items())


def start_run(sl, app_id: str, args: list[str], *, parameters: str | None = None, **extra):
    """Start the test job (``parameters`` "": none, as a job without an environment)."""
    submit = {"entryPoint": f"s3://{BUCKET}/code/job.py", "entryPointArguments": args}
    parameters = dag_parameters() if parameters is None else parameters
    if parameters:
        submit["sparkSubmitParameters"] = parameters
    return sl.start_job_run(
        applicationId=app_id,
        executionRoleArn=ROLE,
        jobDriver={"sparkSubmit": submit},
        configurationOverrides={
            "monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": f"s3://{BUCKET}/logs/"}
            }
        },
        **extra,
    )["jobRunId"]


def driver_log(s3, app_id: str, run_id: str, name: str) -> str:
    key = f"logs/applications/{app_id}/jobs/{run_id}/SPARK_DRIVER/{name}.gz"
    return gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode()


# ---------------------------------------------------------------------------- applications


def test_application_goes_through_aws_states(aws):
    _, sl = aws
    app_id = create_app(sl, architecture="ARM64")
    assert app_state(sl, app_id) == "CREATING"  # moto alone says STARTED at once
    with pytest.raises(ClientError, match="ValidationException"):
        sl.start_application(applicationId=app_id)  # not while CREATING
    assert states_until(lambda: app_state(sl, app_id), ("CREATED",)) == ["CREATING", "CREATED"]
    assert sl.get_application(applicationId=app_id)["application"]["architecture"] == "ARM64"
    with pytest.raises(ClientError, match=r"must be in one of the following statuses: \[STARTING"):
        sl.stop_application(applicationId=app_id)  # AWS refuses to stop a CREATED application
    assert app_state(sl, app_id) == "CREATED"

    sl.start_application(applicationId=app_id)
    assert states_until(lambda: app_state(sl, app_id), ("STARTED",)) == ["STARTING", "STARTED"]
    with pytest.raises(ClientError, match="must be in one of the following statuses"):
        sl.delete_application(applicationId=app_id)
    sl.stop_application(applicationId=app_id)
    assert states_until(lambda: app_state(sl, app_id), ("STOPPED",)) == ["STOPPING", "STOPPED"]
    with pytest.raises(ClientError, match="Current status: STOPPED"):
        sl.stop_application(applicationId=app_id)
    sl.delete_application(applicationId=app_id)
    assert app_state(sl, app_id) == "TERMINATED"


def test_idle_application_stops_itself(aws, emr_emulator):
    _, sl = aws
    emr_emulator.settings.idle_scale = 0.02  # 1 minute -> 1.2 s
    app_id = create_app(sl, autoStopConfiguration={"enabled": True, "idleTimeoutMinutes": 1})
    states_until(lambda: app_state(sl, app_id), ("CREATED",))
    sl.start_application(applicationId=app_id)
    seen = states_until(lambda: app_state(sl, app_id), ("STOPPED",))
    assert seen[-3:] == ["STARTED", "STOPPING", "STOPPED"]
    details = sl.get_application(applicationId=app_id)["application"]["stateDetails"]
    assert "idle for 1 minutes" in details


def test_job_run_auto_starts_the_application_and_is_cancelled_while_queued(aws, emr_emulator):
    _, sl = aws
    emr_emulator.settings.job_queue_s = 3600  # stays SUBMITTED
    app_id = create_app(sl)
    states_until(lambda: app_state(sl, app_id), ("CREATED",))
    run_id = start_run(sl, app_id, ["ok", "x", "y"])
    assert run_of(sl, app_id, run_id)["state"] == "SUBMITTED"  # moto alone says SUCCESS
    states_until(lambda: app_state(sl, app_id), ("STARTED",))  # autoStartConfiguration
    with pytest.raises(ClientError, match="not finished"):
        sl.stop_application(applicationId=app_id)

    sl.cancel_job_run(applicationId=app_id, jobRunId=run_id)
    run = run_of(sl, app_id, run_id)
    assert run["state"] == "CANCELLED"
    assert run["billedResourceUtilization"] == {
        "vCPUHour": 0.0,
        "memoryGBHour": 0.0,
        "storageGBHour": 0.0,
    }
    with pytest.raises(ClientError, match="cannot be cancelled"):
        sl.cancel_job_run(applicationId=app_id, jobRunId=run_id)
    sl.stop_application(applicationId=app_id)  # nothing active any more
    states_until(lambda: app_state(sl, app_id), ("STOPPED",))


def test_application_without_auto_start_refuses_job_runs(aws):
    _, sl = aws
    app_id = create_app(sl, autoStartConfiguration={"enabled": False})
    states_until(lambda: app_state(sl, app_id), ("CREATED",))
    with pytest.raises(ClientError, match="autoStartConfiguration is disabled"):
        start_run(sl, app_id, ["ok", "x", "y"])


@pytest.mark.parametrize(
    ("tarball", "message"),
    [
        (None, "does not exist"),
        (env_tarball(with_python=False), "has no bin/python at its root"),
        (b"not a tarball", "is not a readable tar.gz"),
    ],
    ids=["missing", "no-python", "not-a-tarball"],
)
def test_job_run_fails_on_an_unusable_environment_archive(aws, emr_emulator, tarball, message):
    s3, sl = aws
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=JOB)
    if tarball is not None:
        s3.put_object(Bucket=BUCKET, Key=ENV_KEY, Body=tarball)
    app_id = create_app(sl)
    run_id = start_run(sl, app_id, ["ok", "x", "y"])
    seen = states_until(lambda: run_of(sl, app_id, run_id)["state"], ("FAILED", "SUCCESS"))
    assert seen[0] == "SUBMITTED"
    assert seen[-1] == "FAILED"
    (record,) = emr_emulator.engine.serverless.snapshot()["job_runs"]
    assert [t["state"] for t in record["timeline"]] == [
        "SUBMITTED",
        "PENDING",
        "SCHEDULED",
        "RUNNING",
        "FAILED",
    ]
    run = run_of(sl, app_id, run_id)
    assert message in run["stateDetails"]
    assert run["stateDetails"].startswith("Job failed")
    assert message in driver_log(s3, app_id, run_id, "stderr")
    assert run["billedResourceUtilization"]["vCPUHour"] == pytest.approx(10 / 60, abs=1e-5)  # 1 min


# ---------------------------------------------------------------------------- real job runs


@pytest.mark.slow
def test_real_job_runs_to_success_and_failure_with_logs_and_bills(aws):
    s3, sl = aws
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=JOB)
    s3.put_object(Bucket=BUCKET, Key=ENV_KEY, Body=env_tarball())
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"in/{i}.txt", Body=b"x\ny\n")
    app_id = create_app(sl)
    ok = start_run(sl, app_id, ["ok", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/ok"])
    bad = start_run(sl, app_id, ["fail", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/bad"])
    seen = states_until(lambda: run_of(sl, app_id, ok)["state"], ("SUCCESS", "FAILED"), 240)
    assert seen[-1] == "SUCCESS", run_of(sl, app_id, ok)["stateDetails"]
    assert "RUNNING" in seen
    states_until(lambda: run_of(sl, app_id, bad)["state"], ("SUCCESS", "FAILED"), 240)

    run = run_of(sl, app_id, ok)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "out/ok/_SUCCESS" in keys
    assert any(k.startswith("out/ok/") and k.endswith(".parquet") for k in keys)
    assert run["endedAt"] >= run["startedAt"] >= run["createdAt"]
    seconds = run["totalExecutionDurationSeconds"]
    assert seconds >= 1
    # DAG_SIZES: a 2 vCPU / 5 GB driver (4g + 384 MB overhead) + 2 x 4 vCPU / 9 GB executors.
    assert run["totalResourceUtilization"]["vCPUHour"] == pytest.approx(
        10 * seconds / 3600, abs=1e-5
    )
    billed = max(seconds, 60) / 3600
    assert run["billedResourceUtilization"] == pytest.approx(
        {"vCPUHour": 10 * billed, "memoryGBHour": 23 * billed, "storageGBHour": 0.0}, abs=1e-5
    )
    stdout, stderr = driver_log(s3, app_id, ok, "stdout"), driver_log(s3, app_id, ok, "stderr")
    assert "rows 6" in stdout
    assert "runs with the emulator's own interpreter" in stderr
    assert "spark.executor.memory=8g dropped" in stderr

    failed = run_of(sl, app_id, bad)
    assert failed["state"] == "FAILED"
    assert "ExitCode: 3" in failed["stateDetails"]
    assert "error: asked to fail after writing" in failed["stateDetails"]
    assert "error: asked to fail" in driver_log(s3, app_id, bad, "stdout")


@pytest.mark.slow
def test_cancel_and_timeout_kill_the_running_job(aws, emr_emulator, tmp_path):
    s3, sl = aws
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=SLEEP_JOB)
    app_id = create_app(sl)
    pid_file = tmp_path / "cancel.pid"
    run_id = start_run(sl, app_id, [str(pid_file)], parameters="")
    pid = int(wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 90))
    assert run_of(sl, app_id, run_id)["state"] == "RUNNING"
    sl.cancel_job_run(applicationId=app_id, jobRunId=run_id)
    assert run_of(sl, app_id, run_id)["state"] == "CANCELLING"
    states_until(lambda: run_of(sl, app_id, run_id)["state"], ("CANCELLED",), 30)
    wait_for(lambda: not _alive(pid), 10, "the cancelled job's Python driver to exit")
    assert "cancelled by user request" in run_of(sl, app_id, run_id)["stateDetails"]

    emr_emulator.settings.timeout_scale = 0.05  # 5 minutes -> 15 s
    pid_file = tmp_path / "timeout.pid"
    run_id = start_run(sl, app_id, [str(pid_file)], parameters="", executionTimeoutMinutes=5)
    pid = int(wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 90))
    states_until(lambda: run_of(sl, app_id, run_id)["state"], ("CANCELLED",), 60)
    wait_for(lambda: not _alive(pid), 10, "the timed-out job's Python driver to exit")
    assert "executionTimeoutMinutes (5)" in run_of(sl, app_id, run_id)["stateDetails"]


# ---------------------------------------------------------------------------- pure parts


def test_billing_follows_aws_minimum_and_free_storage():
    driver, executor = Worker(4, 16, 20), Worker(4, 16, 50)
    used = resource_utilization([driver, executor, executor], 30.2, billed=False)
    assert used == pytest.approx(
        {
            "vCPUHour": 12 * 31 / 3600,
            "memoryGBHour": 48 * 31 / 3600,
            "storageGBHour": 120 * 31 / 3600,
        },
        abs=1e-5,
    )
    billed = resource_utilization([driver, executor, executor], 30.2, billed=True)
    assert billed == pytest.approx(
        {"vCPUHour": 12 / 60, "memoryGBHour": 48 / 60, "storageGBHour": 60 / 60}, abs=1e-5
    )
    assert resource_utilization([driver], 7200, billed=True) == pytest.approx(
        {"vCPUHour": 8.0, "memoryGBHour": 32.0, "storageGBHour": 0.0}
    )
    assert resource_utilization([], 100, billed=True)["vCPUHour"] == 0.0


def test_requested_workers_take_the_jobs_sizes_or_aws_defaults():
    assert requested_workers({}) == [Worker(4, 16, 20)] * 4  # driver + 3 initial executors
    workers = requested_workers({**DAG_SIZES, "spark.emr-serverless.executor.disk": "60G"})
    assert workers == [Worker(2, 5, 20), Worker(4, 9, 60), Worker(4, 9, 60)]
    capped = requested_workers({"spark.dynamicAllocation.maxExecutors": "1"})
    assert len(capped) == 2
    assert size_gb("2048m") == 2.0
    assert size_gb("20G", default_unit="g") == 20.0
    with pytest.raises(ValueError, match="not a size"):
        size_gb("lots")


def test_prepare_job_run_adds_master_drops_serverless_confs(tmp_path):
    prepared = prepare_job_run(
        {
            "sparkSubmit": {
                "entryPoint": "s3://b/code/entrypoint.py",
                "entryPointArguments": ["--input", "s3://b/data/"],
                "sparkSubmitParameters": dag_parameters(None)
                + " --conf spark.emr-serverless.driverEnv.FOO=bar"
                + " --conf spark.sql.shuffle.partitions=4 --py-files s3://b/code/spark_jobs.zip",
            }
        },
        {
            "applicationConfiguration": [
                {"classification": "spark-defaults", "properties": {"spark.x": "1"}}
            ]
        },
        mirror=S3Mirror(tmp_path / "s3", s3_client=None),
        conf_dir=tmp_path / "conf",
        local_cores=2,
        python="/venv/bin/python",
        base_env={},
    )
    root = f"file://{tmp_path / 's3'}"
    argv = prepared.argv[1:]
    assert argv[:4] == ["--master", "local[2]", "--deploy-mode", "client"]
    assert argv[-3:] == [f"{root}/b/code/entrypoint.py", "--input", f"{root}/b/data/"]
    assert ["--py-files", f"{root}/b/code/spark_jobs.zip"] == argv[-5:-3]
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert confs == ["spark.x=1", "spark.sql.shuffle.partitions=4"]
    assert prepared.env["FOO"] == "bar"
    assert prepared.env["PYSPARK_PYTHON"] == "/venv/bin/python"
    assert any("spark.driver.memory=4g dropped" in r for r in prepared.rewrites)


@pytest.mark.parametrize(
    ("driver", "message"),
    [
        ({"hive": {"query": "s3://b/q.sql"}}, "sparkSubmit job drivers only"),
        ({"sparkSubmit": {"entryPoint": ""}}, "entryPoint is required"),
        (
            {
                "sparkSubmit": {
                    "entryPoint": "s3://b/x.py",
                    "sparkSubmitParameters": "--master yarn",
                }
            },
            "not a parameter of an EMR Serverless job run",
        ),
    ],
)
def test_prepare_job_run_rejects_what_serverless_would_not_run(tmp_path, driver, message):
    with pytest.raises(StepRejected, match=message):
        prepare_job_run(
            driver,
            None,
            mirror=S3Mirror(tmp_path, None),
            conf_dir=tmp_path / "c",
            local_cores=1,
            python="/p",
        )


ENV_JOB = b"""
import sys
import PIL
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
def where(_):
    import sys, PIL
    return f"{sys.executable} {PIL.__version__}"
print("driver", sys.executable, PIL.__version__)
print("executor", spark.sparkContext.parallelize([1], 1).map(where).collect()[0])
"""


@pytest.mark.slow
def test_an_environment_built_for_this_machine_is_really_used(aws, tmp_path):
    """The packed env from include/staging/serverless_env's real build: driver and executors run its
    Python (which has Pillow; pyspark comes from Spark, as on EMR Serverless)."""
    import platform

    from include.config import REPO_ROOT
    from include.staging.serverless_env import build_packed_env, spark_submit_conf

    s3, sl = aws
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pillow==13.0.0\n")
    archive = tmp_path / "pyspark_env.tar.gz"
    arch = {"arm64": "aarch64"}.get(platform.machine(), platform.machine())
    build_packed_env(requirements, REPO_ROOT / "constraints.txt", archive, arch, "3.11")
    s3.upload_file(str(archive), BUCKET, ENV_KEY)
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=ENV_JOB)
    conf = spark_submit_conf(f"s3://{BUCKET}/{ENV_KEY}")
    app_id = create_app(sl)
    run_id = start_run(
        sl, app_id, [], parameters=" ".join(f"--conf {k}={v}" for k, v in conf.items())
    )
    states_until(lambda: run_of(sl, app_id, run_id)["state"], ("SUCCESS", "FAILED"), 180)
    assert run_of(sl, app_id, run_id)["state"] == "SUCCESS", driver_log(
        s3, app_id, run_id, "stdout"
    )
    stdout = driver_log(s3, app_id, run_id, "stdout")
    lines = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}
    assert lines["driver"][1] == lines["executor"][1] == "13.0.0"
    assert lines["driver"][0] == lines["executor"][0]
    assert "/envs/" in lines["driver"][0]
    assert lines["driver"][0].endswith("/bin/python")
    assert "built for this machine" in driver_log(s3, app_id, run_id, "stderr")


# ---------------------------------------------------------------------------- queuing


def _held_and_queued(sl, emr_emulator, **scheduler) -> tuple[str, str, str]:
    """An application of one concurrency slot: run A holds it (PENDING, kept there), run B
    waits QUEUED. Returns (application, A, B)."""
    emr_emulator.settings.job_queue_s = 1.0
    app_id = create_app(sl, schedulerConfiguration={"maxConcurrentRuns": 1, **scheduler})
    held = start_run(sl, app_id, ["ok", "x", "y"], parameters="")
    queued = start_run(sl, app_id, ["ok", "x", "y"], parameters="")
    states_until(lambda: run_of(sl, app_id, queued)["state"], ("QUEUED",))
    emr_emulator.settings.job_queue_s = 3600  # A stays where it is, holding the slot
    assert run_of(sl, app_id, held)["state"] in ("PENDING", "SCHEDULED")
    return app_id, held, queued


def test_a_job_run_waits_queued_while_the_concurrency_is_taken(aws, emr_emulator):
    _, sl = aws
    app_id, held, queued = _held_and_queued(sl, emr_emulator)
    time.sleep(0.5)
    assert run_of(sl, app_id, queued)["state"] == "QUEUED"  # still: the slot is taken
    with pytest.raises(ClientError, match="not finished"):
        sl.stop_application(applicationId=app_id)  # a queued run is active

    sl.cancel_job_run(applicationId=app_id, jobRunId=held)
    # The slot is free: the queued run goes on, without waiting for job_queue_s.
    states_until(lambda: run_of(sl, app_id, queued)["state"], ("PENDING",), timeout=5)
    sl.cancel_job_run(applicationId=app_id, jobRunId=queued)
    assert run_of(sl, app_id, queued)["state"] == "CANCELLED"


def test_a_queued_job_run_times_out_after_queue_timeout_minutes(aws, emr_emulator):
    _, sl = aws
    emr_emulator.settings.timeout_scale = 1 / 900  # 15 minutes -> 1 s
    app_id, held, queued = _held_and_queued(sl, emr_emulator, queueTimeoutMinutes=15)
    states_until(lambda: run_of(sl, app_id, queued)["state"], ("CANCELLED",), timeout=10)
    details = run_of(sl, app_id, queued)["stateDetails"]
    assert "queueTimeoutMinutes (15)" in details
    assert run_of(sl, app_id, held)["state"] in ("PENDING", "SCHEDULED")  # untouched


@pytest.mark.parametrize(
    ("release", "requested", "expected"),
    [
        ("emr-7.12.0", None, {"maxConcurrentRuns": 15, "queueTimeoutMinutes": 360}),
        ("emr-7.3.0", None, {"maxConcurrentRuns": 15, "queueTimeoutMinutes": 360}),
        ("emr-7.2.0", None, None),  # before 7.3.0: off unless configured
        (
            "emr-7.0.0",
            {"maxConcurrentRuns": 2},
            {"maxConcurrentRuns": 2, "queueTimeoutMinutes": 360},
        ),
    ],
)
def test_scheduler_configuration_follows_the_release_and_request(release, requested, expected):
    from emr_emulator.serverless_scheduler import scheduler_configuration

    assert scheduler_configuration(release, requested) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"schedulerConfiguration": {"maxConcurrentRuns": 0}}, r"between 1 and 1000, got 0"),
        ({"schedulerConfiguration": {"queueTimeoutMinutes": 721}}, r"between 15 and 720"),
        ({"schedulerConfiguration": {}, "releaseLabel": "emr-6.15.0"}, r"emr-7\.0\.0 and above"),
    ],
)
def test_scheduler_configuration_aws_refuses_is_refused(aws, extra, message):
    _, sl = aws
    request = {"name": "fruits", "releaseLabel": "emr-7.12.0", "type": "SPARK", **extra}
    with pytest.raises(ClientError, match=message) as refused:
        sl.create_application(**request)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert sl.list_applications()["applications"] == []  # nothing was created


# ---------------------------------------------------------------------------- worker sizes


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"spark.executor.cores": "3"}, r"spark\.executor\.cores=3; .* 1, 2, 4, 8, 16 vCPUs"),
        (
            {"spark.executor.cores": "8", "spark.executor.memory": "60g"},
            r"executor memory 66 GB .* more than the 60 GB a 8 vCPU worker",
        ),
        (
            {"spark.driver.cores": "1", "spark.driver.memory": "8g"},
            r"driver memory 9 GB .* more than the 8 GB a 1 vCPU worker",
        ),
        ({"spark.emr-serverless.executor.disk": "10g"}, r"executor\.disk=10g; .* 20-200 GB"),
        ({"spark.emr-serverless.driver.disk": "250G"}, r"driver\.disk=250G"),
    ],
)
def test_worker_sizes_outside_aws_table_are_refused_at_start_job_run(aws, conf, message):
    _, sl = aws
    app_id = create_app(sl)
    parameters = " ".join(f"--conf {k}={v}" for k, v in conf.items())
    with pytest.raises(ClientError, match=message) as refused:
        start_run(sl, app_id, ["ok", "x", "y"], parameters=parameters)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert job_runs_of(sl, app_id) == []  # nothing was started


def job_runs_of(sl, app_id: str) -> list[dict[str, Any]]:
    try:
        return sl.list_job_runs(applicationId=app_id)["jobRuns"]
    except sl.exceptions.ResourceNotFoundException:  # moto: an application without runs
        return []


def test_worker_sizes_in_configuration_overrides_are_checked_too(aws):
    _, sl = aws
    app_id = create_app(sl)
    overrides = {
        "applicationConfiguration": [
            {"classification": "spark-defaults", "properties": {"spark.driver.memory": "40g"}}
        ]
    }
    with pytest.raises(ClientError, match=r"driver memory 44 GB .* 30 GB a 4 vCPU worker"):
        sl.start_job_run(
            applicationId=app_id,
            executionRoleArn=ROLE,
            jobDriver={"sparkSubmit": {"entryPoint": f"s3://{BUCKET}/code/job.py"}},
            configurationOverrides=overrides,
        )


@pytest.mark.parametrize(
    "conf",
    [
        {},  # EMR Serverless's defaults: 4 vCPU, 14g + 10 % = 16 GB
        DAG_SIZES,
        {"spark.executor.cores": "8", "spark.executor.memory": "54g"},  # 59.4 -> 60 GB
        {"spark.executor.cores": "16", "spark.executor.memory": "100g"},
        {"spark.emr-serverless.executor.disk": "200G", "spark.emr-serverless.driver.disk": "20g"},
    ],
)
def test_worker_sizes_aws_allows_pass(conf):
    from emr_emulator.serverless_jobs import check_worker_sizes

    check_worker_sizes(conf)  # no error


def test_every_worker_size_the_dag_may_ask_for_is_accepted():
    """The project's sizing (include/capacity/serverless_sizing.py, its own table) against the
    emulator's: every size the DAG can send is one the emulator accepts."""
    from emr_emulator.serverless_jobs import check_worker_sizes
    from include.capacity.serverless_sizing import WORKER_MEMORY_GB, size_serverless_workers
    from include.capacity.worker_memory import SizingError

    checked = 0
    for vcpu, (low, high, _) in WORKER_MEMORY_GB.items():
        for memory in (low, high):
            try:
                sizing = size_serverless_workers(
                    runtime="litert",
                    batch_size=16,
                    image_size=224,
                    executors=1,
                    executor_vcpu=vcpu,
                    executor_memory_gb=memory,
                    driver_vcpu=vcpu,
                    driver_memory_gb=memory,
                    disk_gb=200,
                )
            except SizingError:
                continue  # too small for the model: the DAG refuses it itself
            check_worker_sizes(sizing.spark_conf())
            checked += 1
    assert checked >= len(WORKER_MEMORY_GB)
