"""The EMR DAG against the offline EMR (``emr_emulator``), running the REAL Spark job.

No stand-in plays the job here: the DAG uploads the real ``spark_jobs`` package, the
emulator runs the step's own spark-submit list on local Spark, and the DAG downloads what
the job wrote. The fast orchestration cases (fault matrix, retries) stay in
``test_fruits_emr_pipeline.py`` with ``tests/emr_fakes.py``; these few are slow by nature
(each real job costs tens of seconds on 2 cores).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dags.test_fruits_emr_pipeline import BUCKET, DAG_ID, PREFIX, REGION, run_dag
from tests.emr_fakes import airflow_identity, step_arg

# IAM enforced: the DAGs run as an IAM user holding only the Airflow policy create-roles
# renders, their jobs' S3 traffic as the instance profile / job runtime role.
pytestmark = [pytest.mark.slow, pytest.mark.enforce_iam]

EMU_PARAMS = {
    "poke_interval_seconds": 1,
    "step_timeout_seconds": 900,
    "weights": "none",
    "wheelhouse": False,  # nothing installs on an emulated node (no PyPI in tests)
}


@pytest.fixture
def emulated_aws(emr_emulator, monkeypatch, tmp_path) -> Iterator[dict[str, Any]]:
    """The pipeline's AWS connection and settings pointed at the emulator; bucket created."""
    results = tmp_path / "results"
    monkeypatch.setenv("FRUITS_BUCKET", BUCKET)
    monkeypatch.setenv("FRUITS_PREFIX", PREFIX)
    monkeypatch.setenv("FRUITS_REGION", REGION)
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(results))
    monkeypatch.delenv("FRUITS_EMR_LOG_URI", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        airflow_identity(emr_emulator, REGION, bucket=BUCKET, prefix=PREFIX),
    )
    s3 = emr_emulator.s3_client()
    yield {"results": results, "s3": s3, "emr": _emr(emr_emulator), "emulator": emr_emulator}
    assert emr_emulator.iam.checked > 0  # the DAG really ran as the Airflow IAM user


def _emr(emulator) -> Any:
    import boto3

    return boto3.client(
        "emr",
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def real_emr_dag(dagbag, airflow_db, monkeypatch):
    """The EMR DAG as shipped (the real job package), retry delays zeroed."""
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag


def _only_cluster(emr) -> dict[str, Any]:
    (summary,) = emr.list_clusters()["Clusters"]
    return emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]


def _wait_for_state(emr, state: str, timeout: float = 60) -> dict[str, Any]:
    """TerminateJobFlows returns at once; the cluster goes TERMINATING, then TERMINATED."""
    deadline = time.monotonic() + timeout
    while (cluster := _only_cluster(emr))["Status"]["State"] != state:
        assert time.monotonic() < deadline, cluster["Status"]
        time.sleep(0.3)
    return cluster


def _images(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "images"])
def test_real_job_through_the_emr_dag(pack, real_emr_dag, emulated_aws, sample_dataset):
    state, tasks = run_dag(
        real_emr_dag, dataset_dir=str(sample_dataset), pack_dataset=pack, **EMU_PARAMS
    )
    assert state == "success", tasks

    emr = emulated_aws["emr"]
    cluster = _wait_for_state(emr, "TERMINATED")
    assert cluster["Status"]["StateChangeReason"]["Code"] == "USER_REQUEST"  # the DAG ended it
    (step,) = emr.list_steps(ClusterId=cluster["Id"])["Steps"]
    assert step["Status"]["State"] == "COMPLETED"
    args = step["Config"]["Args"]
    layout = "packed" if pack else "images"
    assert step_arg(args, "--input").endswith(f"/datasets/{sample_dataset.name}/{layout}/")
    # YARN granted the step every executor its sizing planned (2 core nodes x 1), the AM
    # beside one of them.
    workdir = emulated_aws["emulator"].settings.data_dir / "steps" / cluster["Id"] / step["Id"]
    assert "executors granted 2 of 2" in (workdir / "stderr").read_text()

    run_dir = emulated_aws["results"] / "fruits_emr_pipeline" / step_arg(args, "--run-id")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    images = _images(sample_dataset)
    counts = metrics["counts"]
    assert counts["valid_images"] == len(images)
    assert counts["bad_files"] == 0
    assert counts["by_label"] == dict(Counter(p.parent.name for p in images))
    assert metrics["weights"]["meaningful"] is False
    assert list((run_dir / "pca").glob("*.parquet"))
    saved = json.loads((run_dir / "cluster.json").read_text())["Cluster"]
    assert saved["Id"] == cluster["Id"]
    # the report waited for the teardown: the cluster's final state, not WAITING
    assert saved["Status"]["State"] == "TERMINATED"
    assert "TERMINATED" in (run_dir / "report" / "report.html").read_text()
    # The job wrote to S3 (through the mirror), as on EMR: the same keys the DAG read.
    keys = {o["Key"] for o in emulated_aws["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]}
    results = f"{PREFIX}/results/{run_dir.name}"
    assert {f"{results}/_SUCCESS", f"{results}/metrics.json"} <= keys
    assert not [k for k in keys if k.endswith(".crc")]


def test_an_s3_dataset_is_packed_on_the_cluster_once_per_listing(
    real_emr_dag, emulated_aws, sample_dataset, monkeypatch
):
    """pack_s3_dataset: a Spark step on the cluster packs the S3 images (nothing is
    uploaded or packed by Airflow); a forced rerun of the same listing reads those shards."""
    from include.emr.plan import PACK_STEP_NAME

    s3, emr = emulated_aws["s3"], emulated_aws["emr"]
    s3.create_bucket(
        Bucket="data-team-images", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    images = _images(sample_dataset)
    for path in images:
        key = f"fruits-360/{path.relative_to(sample_dataset).as_posix()}"
        s3.put_object(Bucket="data-team-images", Key=key, Body=path.read_bytes())
    uri = "s3://data-team-images/fruits-360/"
    params = {**EMU_PARAMS, "dataset_uri": uri, "pack_s3_dataset": True}
    # create-roles --dataset-uri: the instance profile may read the dataset in place.
    connection = airflow_identity(
        emulated_aws["emulator"], REGION, bucket=BUCKET, prefix=PREFIX, dataset_uri=uri
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection)

    state, tasks = run_dag(real_emr_dag, **params)
    assert state == "success", tasks
    assert tasks["upload_dataset"] == "success"  # which uploads nothing for an S3 dataset
    cluster = _wait_for_state(emr, "TERMINATED")
    steps = emr.list_steps(ClusterId=cluster["Id"])["Steps"][::-1]  # newest first -> in order
    assert steps[0]["Name"] == PACK_STEP_NAME
    assert [s["Status"]["State"] for s in steps] == ["COMPLETED", "COMPLETED"]
    packed = step_arg(steps[0]["Config"]["Args"], "--output")
    assert step_arg(steps[1]["Config"]["Args"], "--input") == packed + "/"
    bucket, _, key = packed.removeprefix("s3://").partition("/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]}
    assert f"{key}/_SUCCESS" in keys
    assert [k for k in keys if k.endswith(".parquet")]
    run_dir = (
        emulated_aws["results"]
        / "fruits_emr_pipeline"
        / step_arg(steps[1]["Config"]["Args"], "--run-id")
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["input_format"] == "packed"
    assert metrics["counts"]["valid_images"] == len(images)
    assert not [
        k for k in s3.list_objects_v2(Bucket=BUCKET)["Contents"] if "/datasets/" in k["Key"]
    ]

    state, tasks = run_dag(real_emr_dag, force=True, **params)
    assert state == "success", tasks
    (newest,) = [c for c in emr.list_clusters()["Clusters"] if c["Id"] != cluster["Id"]]
    (step,) = emr.list_steps(ClusterId=newest["Id"])["Steps"]  # no packing the second time
    assert step_arg(step["Config"]["Args"], "--input") == packed + "/"


def test_no_decodable_image_fails_the_step_with_the_jobs_reason(
    real_emr_dag, emulated_aws, tmp_path, monkeypatch
):
    import include.emr.operators

    reports: list[str] = []
    original = include.emr.operators.describe_step_failure

    def spy(*args: Any, **kwargs: Any) -> str:
        reports.append(original(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(include.emr.operators, "describe_step_failure", spy)
    broken = tmp_path / "broken-fruits"
    for label in ("Apple", "Kiwi"):
        folder = broken / "Training" / label
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"{i}.jpg").write_bytes(b"not a jpeg at all " * 20)

    state, tasks = run_dag(real_emr_dag, dataset_dir=str(broken), pack_dataset=False, **EMU_PARAMS)
    assert state == "failed", tasks
    assert tasks["wait_for_feature_step"] == "failed"
    assert tasks["terminate_emr_cluster"] == "success"
    assert tasks["download_results"] == "upstream_failed"

    emr = emulated_aws["emr"]
    cluster = _wait_for_state(emr, "TERMINATED")
    (step,) = emr.list_steps(ClusterId=cluster["Id"])["Steps"]
    details = emr.describe_step(ClusterId=cluster["Id"], StepId=step["Id"])["Step"]["Status"]
    assert details["State"] == "FAILED"
    assert "exited with code 2" in details["FailureDetails"]["Reason"]
    assert details["FailureDetails"]["Message"].startswith("error: ")
    (report,) = reports
    assert details["FailureDetails"]["Message"] in report
    # The job's own line, from the step's logs in S3 (not only from FailureDetails).
    log_part = report.split("last lines of", 1)[1]
    assert details["FailureDetails"]["Message"] in log_part
    assert "stdout.gz" in log_part


def test_dead_airflow_leaves_a_cluster_that_sweeper_sees_and_idle_timeout_ends(
    real_emr_dag, dagbag, emulated_aws, sample_dataset
):
    """Airflow "dies" right after create_emr_cluster: every later task is marked success
    without running (``mark_success_pattern``), so nothing terminates the cluster."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from include.params.cluster import emr_params

    emulator = emulated_aws["emulator"]
    emr = emulated_aws["emr"]
    conf = {**{n: p.value for n, p in emr_params().items()}, **EMU_PARAMS}
    # The shortest idle timeout the Params accept (create -> add-step must fit in it).
    conf.update(dataset_dir=str(sample_dataset), idle_timeout_minutes=4)
    after_create = "add_feature_step|wait_for_feature_step|download_results|build_report"
    dag_run = real_emr_dag.test(
        run_conf=conf, mark_success_pattern=f"{after_create}|terminate_emr_cluster"
    )
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states["create_emr_cluster"] == "success", states
    cluster = _only_cluster(emr)
    assert cluster["Status"]["State"] == "WAITING"
    assert emr.get_auto_termination_policy(ClusterId=cluster["Id"])["AutoTerminationPolicy"] == {
        "IdleTimeout": 240
    }

    sweeper = dagbag.dags["fruits_emr_sweeper"].test(run_conf={"dry_run": True, "ttl_hours": 1e-6})
    with create_session() as session:
        (listed,) = session.scalars(
            XComModel.get_many(
                run_id=sweeper.run_id, dag_ids="fruits_emr_sweeper", task_ids="find_stale_clusters"
            )
        ).all()
        assert [c["id"] for c in XComModel.deserialize_value(listed)] == [cluster["Id"]]
    assert _only_cluster(emr)["Status"]["State"] == "WAITING"  # a dry run terminates nothing

    emulator.settings.idle_scale = 0.0125  # the 240 s IdleTimeout passes in 3 s
    reason = _wait_for_state(emr, "TERMINATED")["Status"]["StateChangeReason"]
    assert "idle for longer than its auto-termination IdleTimeout (240 s)" in reason["Message"]
