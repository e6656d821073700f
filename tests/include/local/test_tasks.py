"""The local DAG's task bodies (include/local/tasks.py) called directly: no DAG, no Airflow
context. The whole DAG runs in tests/dags/test_fruits_local_pipeline.py."""

from __future__ import annotations

import pytest

from include.local import tasks


def test_validate_dataset_returns_the_resolved_folder_and_its_counts(sample_dataset):
    summary = tasks.validate_dataset({"dataset_dir": str(sample_dataset), "weights": "none"})
    assert summary["dataset_dir"] == str(sample_dataset.resolve())
    assert summary["images"] > 0


def test_validate_dataset_refuses_a_missing_folder_without_retry(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="nowhere does not exist"):
        tasks.validate_dataset({"dataset_dir": str(tmp_path / "nowhere")})


def test_validate_dataset_refuses_bad_params_without_retry(sample_dataset):
    from airflow.sdk.exceptions import AirflowFailException

    params = {"dataset_dir": str(sample_dataset), "pca_variance": None, "pca_k": None}
    with pytest.raises(AirflowFailException, match="pca_variance"):
        tasks.validate_dataset(params)


def test_imagenet_that_this_machine_cannot_get_fails_before_the_job(sample_dataset, capsys):
    """Offline and nothing cached: the run fails in its first task, saying what to do."""
    from airflow.sdk.exceptions import AirflowFailException

    for runtime in ("keras", "litert"):
        params = {"dataset_dir": str(sample_dataset), "weights": "imagenet", "runtime": runtime}
        with pytest.raises(AirflowFailException, match="weights=imagenet: ImageNet weights"):
            tasks.validate_dataset(params)


def test_imagenet_with_its_converted_model_cached_needs_no_weights_file(
    sample_dataset, monkeypatch, tmp_path, capsys
):
    from spark_jobs.runtimes import ModelSpec

    monkeypatch.setenv("FRUITS_MODEL_CACHE", str(tmp_path))
    (tmp_path / ModelSpec("litert", "imagenet", "imagenet", 224).file_name).write_bytes(b"m")

    params = {"dataset_dir": str(sample_dataset), "weights": "imagenet", "runtime": "litert"}
    assert tasks.validate_dataset(params)["images"] > 0
    assert "in the worker's cache" in capsys.readouterr().out


def test_missing_spark_connection_message_says_how_to_fix_it(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_CONN_SPARK_LOCAL", raising=False)
    with pytest.raises(AirflowFailException, match="AIRFLOW_CONN_SPARK_LOCAL="):
        tasks.prepare_spark_job({"dataset_dir": "/unused"}, {}, run_id="r1")


def test_check_results_refuses_a_run_without_success_marker(tmp_path):
    check = tasks.check_results
    (tmp_path / "metrics.json").write_text("{}")

    with pytest.raises(RuntimeError, match="lacks _SUCCESS"):
        check(str(tmp_path))
    package = tmp_path.parent / "_packages" / tmp_path.name
    package.mkdir(parents=True)
    (tmp_path / "_SUCCESS").write_bytes(b"")

    assert check(str(tmp_path)) == str(tmp_path)
    assert not package.exists()  # the run's job package is removed once results are in
