"""The EMR cluster DAG's task bodies (include/emr/tasks.py), called directly: no DAG, no
Airflow context; AWS is moto."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.emr import tasks
from include.params.cluster import emr_params

REGION = "eu-west-1"
BUCKET = "fruits-test-bucket"
DAG_ID = "fruits_emr_pipeline"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
FAST = {"poke_interval_seconds": 1, "step_timeout_seconds": 60, "weights": "none"}

BAD_PARAMS = {
    # case: (Params, extra environment, expected message)
    "pca both empty": ({"pca_variance": None, "pca_k": None}, {}, "set either pca_variance"),
    "weights file missing": ({"weights": "/nonexistent/w.h5"}, {}, "weights file /nonexistent"),
    "count given as bool": ({"core_nodes": True}, {}, "core_nodes must be an integer"),
    "instance not allowed": ({"instance_type": "p4d.24xlarge"}, {}, "is not allowed"),
    "release not emr-7": ({"release_label": "emr-6.15.0"}, {}, "emr-7.x label"),
    "region outside EU": ({}, {"FRUITS_REGION": "us-east-1"}, "EU only"),
}


def _params(**conf):
    return {**{name: p.value for name, p in emr_params().items()}, **FAST, **conf}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_validate_params_rejects_with_clear_message(case, run_env, assert_refused):
    """Bad settings become one clear, non-retried failure."""
    conf, environment, message = BAD_PARAMS[case]
    assert_refused(
        lambda params: tasks.validate_params(params, dag_id=DAG_ID, run_id=RUN_ID),
        _params(**conf),
        environment,
        message,
    )


def test_validate_params_plans_the_run(run_env):
    plan = tasks.validate_params(_params(wheelhouse=False), dag_id=DAG_ID, run_id=RUN_ID)
    assert plan["bucket"] == BUCKET
    assert plan["region"] == REGION
    assert plan["wheelhouse"] is None
    tags = {t["Key"]: t["Value"] for t in plan["job_flow_overrides"]["Tags"]}
    assert tags["dag_id"] == DAG_ID
    assert tags["run_id"] == RUN_ID
    assert plan.get("dataset_uri") is None


def test_validate_params_reads_an_s3_dataset_in_place(run_env):
    params = _params(wheelhouse=False, dataset_uri="s3://data-team-images/fruits")
    plan = tasks.validate_params(params, dag_id=DAG_ID, run_id=RUN_ID)
    assert plan["dataset_uri"] == "s3://data-team-images/fruits/"
    assert "s3://data-team-images/fruits/" in plan["steps"][-1]["HadoopJarStep"]["Args"]


def test_plan_cluster_steps_of_a_local_dataset_is_the_feature_step(run_env):
    plan = tasks.validate_params(_params(wheelhouse=False), dag_id=DAG_ID, run_id=RUN_ID)
    steps = tasks.plan_cluster_steps(plan, {"images": 10, "by_split_label": {}})
    assert steps == plan["steps"]


def test_stage_wheelhouse_off_stages_nothing(run_env, capsys):
    plan = tasks.validate_params(_params(wheelhouse=False), dag_id=DAG_ID, run_id=RUN_ID)
    assert tasks.stage_wheelhouse(plan) is None
    assert "the nodes install from PyPI" in capsys.readouterr().out


def test_download_results_without_success_marker_fails_without_retry(run_account):
    plan = tasks.validate_params(_params(wheelhouse=False), dag_id=DAG_ID, run_id=RUN_ID)
    with pytest.raises(AirflowFailException, match="_SUCCESS"):
        tasks.download_results(plan, None)


@pytest.fixture
def offline_worker(monkeypatch, tmp_path):
    """A worker without internet, an empty model cache and no Keras cache."""
    monkeypatch.setenv("FRUITS_OFFLINE", "1")
    monkeypatch.setenv("FRUITS_MODEL_CACHE", str(tmp_path / "model-cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


@pytest.mark.usefixtures("offline_worker")
def test_imagenet_that_this_worker_cannot_get_fails_validate_params(run_account):
    """Offline, a litert run on ImageNet weights would fail in upload_job_package minutes
    later (after the dataset upload, and a retry): it fails here, saying what to do."""
    with pytest.raises(AirflowFailException) as failure:
        tasks.validate_params(
            _params(wheelhouse=False, weights="imagenet"), dag_id=DAG_ID, run_id=RUN_ID
        )
    message = str(failure.value)
    assert message.startswith("Invalid run settings: weights=imagenet: ImageNet weights")
    assert "downloads are off" in message
    assert "weights=none" in message


@pytest.mark.usefixtures("offline_worker")
def test_imagenet_whose_converted_model_is_in_s3_needs_no_weights_here(run_account, capsys):
    from include.staging.model import imagenet_model_staged
    from spark_jobs.runtimes import ModelSpec

    spec = ModelSpec("litert", "imagenet", "imagenet", 224)
    run_account.load_bytes(b"model", f"fruits/models/{spec.file_name}", bucket_name=BUCKET)

    plan = tasks.validate_params(
        _params(wheelhouse=False, weights="imagenet"), dag_id=DAG_ID, run_id=RUN_ID
    )

    assert plan["job"]["weights"] == "imagenet"
    assert "already converted" in capsys.readouterr().out
    # the same lookup without S3 (another runtime, nothing cached) says no
    assert imagenet_model_staged("onnx", 224) is False


@pytest.mark.usefixtures("offline_worker")
def test_imagenet_on_the_keras_runtime_is_left_to_the_nodes(run_account):
    plan = tasks.validate_params(
        _params(wheelhouse=False, weights="imagenet", runtime="keras"),
        dag_id=DAG_ID,
        run_id=RUN_ID,
    )
    assert plan["job"]["runtime"] == "keras"
