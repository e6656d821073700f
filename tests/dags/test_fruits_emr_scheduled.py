"""Scheduled runs of the EMR DAG (dag.test() against moto, EMR played by ``FakeEmrJob``).

Skip unchanged: a second run on the same dataset and settings creates no cluster, uploads
nothing and ends success with every later task *skipped*; ``force``, other settings, other
weights, or results that are gone make it run. Budget: an estimate over ``max_cost_usd``
fails the run before any cluster or upload. Assets: a successful run emits one event per
Asset (checked in Airflow's own ``asset_event`` table), a failed or skipped one none, and
the example consumer DAG reads the PCA output the newest event names.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

# The fixtures (aws_env, moto_aws, emr_dag, ...) come from tests/dags/conftest.py.
from tests.dags.test_fruits_emr_pipeline import (
    BUCKET,
    DAG_ID,
    FAST,
    PREFIX,
    REGION,
    FakeEmrJob,
    clusters_by_state,
    run_dag,
)

pytestmark = pytest.mark.slow

CLUSTER_TASKS = (
    "upload_dataset",
    "upload_job_package",
    "create_emr_cluster",
    "add_feature_step",
    "wait_for_feature_step",
    "download_results",
    "build_report",
    "publish_results",
    "terminate_emr_cluster",
)
RECORD_KEY = f"{PREFIX}/results/_last_success.json"


def s3_state() -> dict[str, tuple[str, Any]]:
    """{key: (ETag, LastModified)} of every object: a changed or new object shows."""
    s3 = boto3.client("s3", region_name=REGION)
    return {
        o["Key"]: (o["ETag"], o["LastModified"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    }


def read_json(key: str) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def asset_events(name: str) -> list[Any]:
    """Airflow's own records of the Asset's events (the ``asset_event`` table)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == name)
            .order_by(AssetEvent.id)
        ).all()
        session.expunge_all()
    return list(events)


def run(dag: Any, dataset: Any, **conf: Any) -> tuple[str, dict[str, str]]:
    with FakeEmrJob("complete") as job:
        state, tasks = run_dag(dag, dataset_dir=str(dataset), **{**FAST, **conf})
    assert not job.errors
    return state, tasks


@pytest.fixture
def dataset(tmp_path, sample_dataset):
    """A private copy of the sample dataset (tests change it)."""
    import shutil

    copy = tmp_path / "fruits-360"
    shutil.copytree(sample_dataset, copy)
    return copy


def test_unchanged_rerun_creates_no_cluster_uploads_nothing_and_ends_success(
    emr_dag, moto_aws, dataset
):
    pca_before = len(asset_events("fruits_features_pca"))
    state, tasks = run(emr_dag, dataset)
    assert state == "success", tasks
    assert tasks["skip_if_unchanged"] == tasks["publish_results"] == "success"
    (first_cluster,) = clusters_by_state()
    record = read_json(RECORD_KEY)
    results = f"{PREFIX}/results/{record['run_key']}"
    assert record["results_uri"] == f"s3://{BUCKET}/{results}"
    assert record["report_uri"] == f"s3://{BUCKET}/{results}/report/report.html"
    # Manifest, fingerprint, estimate and report beside the results.
    keys = s3_state()
    for name in ("manifest.json", "fingerprint.json", "cost_estimate.json", "report/report.html"):
        assert f"{results}/{name}" in keys, name
    manifest = read_json(f"{results}/manifest.json")
    files = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file())
    assert [e["path"] for e in manifest["entries"]] == files
    fingerprint = read_json(f"{results}/fingerprint.json")
    assert fingerprint["fingerprint"] == record["fingerprint"]
    assert fingerprint["components"]["manifest_digest"] == manifest["digest"]
    assert len(asset_events("fruits_features_pca")) == pca_before + 1

    before = s3_state()
    state, tasks = run(emr_dag, dataset)

    assert state == "success", tasks
    assert tasks["skip_if_unchanged"] == "success"
    for task in (*CLUSTER_TASKS, "check_budget", "fail_run_if_any_task_failed"):
        assert tasks[task] == "skipped", (task, tasks)
    assert list(clusters_by_state()) == [first_cluster]  # no second cluster
    assert s3_state() == before  # nothing uploaded, not even the manifest
    assert read_json(RECORD_KEY) == record  # the record still names the first run
    assert len(asset_events("fruits_features_pca")) == pca_before + 1  # no event for a skip


def test_a_change_or_force_runs_again(emr_dag, moto_aws, dataset, tmp_path):
    """One chain of runs, each compared with the record the run before it left."""
    (tmp_path / "a.weights.h5").write_bytes(b"weights A")
    (tmp_path / "b.weights.h5").write_bytes(b"weights B")
    # keras: the stand-in weights files are staged as they are (a fast runtime would convert
    # them, and they are not real weights).
    conf: dict[str, Any] = {"weights": str(tmp_path / "a.weights.h5"), "runtime": "keras"}
    state, tasks = run(emr_dag, dataset, **conf)
    assert state == "success", tasks
    record = read_json(RECORD_KEY)

    def change(name: str) -> None:
        if name == "force":
            conf["force"] = True
        elif name == "pca_k":
            conf.update(force=False, pca_k=2, pca_variance=None)
        elif name == "mode":
            conf["mode"] = "full"
        elif name == "weights":  # same file name and path kind, other content
            conf["weights"] = str(tmp_path / "b.weights.h5")
        elif name == "dataset":
            image = next(dataset.rglob("*.jpg"))
            (image.parent / "added.jpg").write_bytes(image.read_bytes())
        elif name == "results_gone":
            boto3.client("s3", region_name=REGION).delete_object(
                Bucket=BUCKET, Key=f"{PREFIX}/results/{record['run_key']}/_SUCCESS"
            )

    for clusters, name in enumerate(
        ["force", "pca_k", "mode", "weights", "dataset", "results_gone"], start=2
    ):
        change(name)
        state, tasks = run(emr_dag, dataset, **conf)
        assert state == "success", (name, tasks)
        assert tasks["create_emr_cluster"] == "success", (name, tasks)
        assert len(clusters_by_state()) == clusters, name
        new_record = read_json(RECORD_KEY)
        assert new_record["run_id"] != record["run_id"], name
        same = name in ("force", "results_gone")
        assert (new_record["fingerprint"] == record["fingerprint"]) == same, name
        record = new_record


def test_a_failed_run_records_nothing_and_emits_no_asset_event(emr_dag, moto_aws, dataset):
    events_before = (
        len(asset_events("fruits_features_pca")),
        len(asset_events("fruits_features_features")),
    )
    with FakeEmrJob("fail"):
        state, tasks = run_dag(emr_dag, dataset_dir=str(dataset), **FAST)
    assert state == "failed", tasks
    assert tasks["publish_results"] == "upstream_failed"
    assert RECORD_KEY not in s3_state()
    events_after = (
        len(asset_events("fruits_features_pca")),
        len(asset_events("fruits_features_features")),
    )
    assert events_after == events_before

    # The failed run left no record: the next run on the same input is not skipped.
    state, tasks = run(emr_dag, dataset)
    assert state == "success"
    assert tasks["create_emr_cluster"] == "success"


def test_success_emits_asset_events_with_counts_and_fingerprint_and_the_consumer_reads_them(
    emr_dag, moto_aws, dataset, dagbag, aws_env
):
    state, tasks = run(emr_dag, dataset)
    assert state == "success", tasks
    record = read_json(RECORD_KEY)
    pca_event = asset_events("fruits_features_pca")[-1]
    features_event = asset_events("fruits_features_features")[-1]
    for event in (pca_event, features_event):
        assert event.source_dag_id == DAG_ID
        assert event.source_task_id == "publish_results"
        assert event.extra["fingerprint"] == record["fingerprint"]
        assert event.extra["valid_images"] == 4  # the fake job's metrics.json
        assert event.extra["run_id"] == record["run_id"]
    assert pca_event.extra["k"] == 2
    assert pca_event.extra["uri"] == f"{record['results_uri']}/pca"
    assert pca_event.extra["local_dir"] == str(aws_env / DAG_ID / record["run_key"] / "pca")

    consumer = dagbag.dags["fruits_pca_consumer"]
    dag_run = consumer.test()
    (ti,) = dag_run.get_task_instances()
    assert str(ti.state) == "success"
    summary = ti.xcom_pull(task_ids="summarise_latest_pca")
    assert summary["rows"] == 4
    assert summary["components"] == 2
    assert summary["labels"] == ["Kiwi", "Lemon"]
    assert summary["run_id"] == record["run_id"]


def test_over_budget_fails_before_any_cluster_or_upload(emr_dag, moto_aws, dataset):
    state, tasks = run(emr_dag, dataset, max_cost_usd=0.01)

    assert state == "failed", tasks
    assert tasks["check_budget"] == "failed"
    assert tasks["upload_dataset"] == tasks["create_emr_cluster"] == "upstream_failed"
    assert tasks["terminate_emr_cluster"] == "success"  # found nothing to terminate
    assert tasks["fail_run_if_any_task_failed"] == "failed"
    assert clusters_by_state() == {}
    keys = list(s3_state())
    assert not [k for k in keys if "/datasets/" in k or "/code/" in k], keys
    assert RECORD_KEY not in keys


# ---------------------------------------------------------------------------- structure


def test_guards_sit_before_every_upload_and_the_cluster(dagbag):
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    from include.results.assets import FEATURES_ASSET, PCA_ASSET

    dag = dagbag.dags[DAG_ID]
    skip = dag.task_dict["skip_if_unchanged"]
    assert isinstance(skip, ShortCircuitOperator)
    assert skip.ignore_downstream_trigger_rules  # terminate (ALL_DONE) is skipped too
    assert skip.upstream_task_ids >= {"validate_params", "validate_dataset"}
    downstream = skip.get_flat_relative_ids(upstream=False)
    assert {*CLUSTER_TASKS, "check_budget", "fail_run_if_any_task_failed"} <= downstream
    budget = dag.task_dict["check_budget"]
    assert budget.get_flat_relative_ids(upstream=False) >= {
        "upload_dataset",
        "upload_job_package",
        "create_emr_cluster",
    }
    with_outlets = {t.task_id: t.outlets for t in dag.tasks if t.outlets}
    assert with_outlets == {"publish_results": [PCA_ASSET, FEATURES_ASSET]}
    assert dag.task_dict["publish_results"].upstream_task_ids >= {"build_report"}


# ---------------------------------------------------------------------------- S3 datasets

DATA_BUCKET = "data-team-images"


@pytest.fixture
def s3_dataset(moto_aws, sample_dataset):
    """The sample dataset copied to another bucket, laid out <split>/<label>/<image>."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=DATA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in sorted(sample_dataset.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            key = f"fruits-360/{path.relative_to(sample_dataset).as_posix()}"
            s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=path.read_bytes())
    return f"s3://{DATA_BUCKET}/fruits-360/"


def test_an_s3_dataset_is_read_in_place_and_an_unchanged_one_is_skipped(emr_dag, s3_dataset):
    with FakeEmrJob("complete") as job:
        state, tasks = run_dag(emr_dag, dataset_uri=s3_dataset, **FAST)
    assert state == "success", tasks
    (step,) = job.seen_steps
    args = step["args"]
    assert args[args.index("--input") + 1] == s3_dataset  # the job reads it in place
    keys = s3_state()
    assert not [k for k in keys if "/datasets/" in k], "an S3 dataset was uploaded again"
    manifest = read_json(f"{PREFIX}/results/{read_json(RECORD_KEY)['run_key']}/manifest.json")
    assert manifest["root"] == s3_dataset
    assert manifest["hash_kind"] == "s3-listing"

    state, tasks = run(emr_dag, "/unused", dataset_uri=s3_dataset)
    assert state == "success", tasks
    assert tasks["create_emr_cluster"] == "skipped"

    # An object changed in place (new ETag): the listing's manifest changes, the run runs.
    s3 = boto3.client("s3", region_name=REGION)
    key = next(k for k in (e["path"] for e in manifest["entries"]) if k.endswith(".jpg"))
    s3.put_object(Bucket=DATA_BUCKET, Key=f"fruits-360/{key}", Body=b"other bytes")
    state, tasks = run(emr_dag, "/unused", dataset_uri=s3_dataset)
    assert state == "success", tasks
    assert tasks["create_emr_cluster"] == "success"
    assert len(clusters_by_state()) == 2


# One run for the path every bad S3 dataset takes; each one's message (no objects, no
# bucket, neither layout) is tested on validate_s3_dataset (tests/include/datasets/test_s3.py).
@pytest.mark.parametrize(
    ("uri", "message"), [(f"s3://{DATA_BUCKET}/flat/", "laid out neither")], ids=["flat"]
)
def test_a_bad_s3_dataset_fails_validation_before_any_cluster(
    uri, message, emr_dag, s3_dataset, monkeypatch
):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=DATA_BUCKET, Key="flat/image.jpg", Body=b"jpeg")
    failures: list[str] = []
    import include.datasets.s3

    original = include.datasets.s3.validate_s3_dataset

    def spy(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except include.datasets.s3.S3DatasetError as exc:
            failures.append(str(exc))
            raise

    monkeypatch.setattr(include.datasets.s3, "validate_s3_dataset", spy)
    state, tasks = run_dag(emr_dag, dataset_uri=uri, **FAST)

    assert state == "failed", tasks
    assert tasks["validate_dataset"] == "failed"
    assert tasks["create_emr_cluster"] == "upstream_failed"
    assert clusters_by_state() == {}
    assert len(failures) == 1  # AirflowFailException: not retried
    assert message in failures[0]
    assert not [k for k in s3_state() if "/datasets/" in k or "/code/" in k]
