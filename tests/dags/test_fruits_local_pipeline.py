"""The local DAG: its shape, the job arguments it builds, and its failure paths (dag.test()).

The end-to-end run on real local Spark is in tests/include/test_local_run.py (``make run``'s
driver runs this DAG).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

from tests.dag_wiring import assert_task_calls

DAG_ID = "fruits_local_pipeline"
SPARK_LOCAL = '{"conn_type": "spark", "host": "local[*]"}'


@pytest.fixture
def dag(dagbag):
    return dagbag.dags[DAG_ID]


@pytest.fixture
def fresh_dag():
    """A newly parsed DAG: dag.test() keeps a run's conf in the DAG's params object."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import DAGS_FOLDER

    return DagBag(str(DAGS_FOLDER / f"{DAG_ID}.py")).dags[DAG_ID]


@pytest.fixture
def local_env(monkeypatch, tmp_path):
    """Results in a temp folder and the spark_local connection, as make run sets them."""
    results = tmp_path / "results"
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(results))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_LOCAL", SPARK_LOCAL)
    return results


def test_tasks_run_in_pipeline_order(dag):
    order = [
        "validate_dataset",
        "skip_if_unchanged",
        "prepare_spark_job",
        "run_feature_job",
        "check_results",
        "build_report",
        "publish_results",
    ]
    assert {t.task_id for t in dag.tasks} == set(order)
    for upstream, downstream in itertools.pairwise(order):
        assert upstream in dag.get_task(downstream).upstream_task_ids
    assert dag.get_task("build_report").upstream_task_ids == {"check_results"}


def test_unchanged_runs_short_circuit_and_only_publish_updates_the_assets(dag):
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    from include.results.assets import FEATURES_ASSET, PCA_ASSET

    skip = dag.get_task("skip_if_unchanged")
    assert isinstance(skip, ShortCircuitOperator)
    assert skip.ignore_downstream_trigger_rules  # every later task is skipped, not failed
    assert skip.downstream_task_ids == {"prepare_spark_job", "publish_results"}
    with_outlets = {t.task_id: t.outlets for t in dag.tasks if t.outlets}
    assert with_outlets == {"publish_results": [PCA_ASSET, FEATURES_ASSET]}


def test_spark_task_is_the_providers_operator_on_local_spark(dag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    task = dag.get_task("run_feature_job")
    assert isinstance(task, SparkSubmitOperator)
    assert task._conn_id == "spark_local"
    assert task.conf["spark.ui.enabled"] == "false"
    assert task.conf["spark.driver.bindAddress"] == "127.0.0.1"


def test_params_are_the_shared_job_params_plus_the_dataset_folder(dag):
    from include.params.common import job_params

    shared = job_params()
    assert set(dag.params) == {*shared, "dataset_dir", "force", "feature_cache"}
    assert dag.params.get_param("feature_cache").value is True
    assert dag.params.get_param("force").value is False
    for name, param in shared.items():
        assert dag.params.get_param(name).value == param.value, name
    assert dag.params.get_param("dataset_dir").value is None


def test_safe_run_id_makes_one_path_segment():
    from include.params.job_args import safe_run_id

    assert (
        safe_run_id("manual__2026-01-01T10:00:00.123+00:00")
        == "manual__2026-01-01T10_00_00.123_00_00"
    )
    assert safe_run_id("../../etc") == "etc"
    with pytest.raises(ValueError, match="no usable characters"):
        safe_run_id("///")


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.slow  # prepare_spark_job converts the 224 px model (TensorFlow, in a child)
def test_prepared_arguments_come_from_the_shared_builder(
    fresh_dag, airflow_db, local_env, sample_dataset
):
    """The Spark task is marked success (no Spark here): only the prepared job is checked."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from include.params.common import job_settings_from_params
    from include.params.job_args import build_job_arguments, safe_run_id

    conf = {"dataset_dir": str(sample_dataset), "weights": "none", "pca_k": 3, "max_images": 10}

    dag_run = fresh_dag.test(
        run_conf=conf,
        mark_success_pattern="run_feature_job|check_results|build_report|publish_results",
    )

    states = _states(dag_run)
    assert states["validate_dataset"] == "success"
    assert states["prepare_spark_job"] == "success"
    with create_session() as session:
        pulled = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=DAG_ID, task_ids="prepare_spark_job")
        ).all()
        values = {x.key: XComModel.deserialize_value(x) for x in pulled}
    run_key = safe_run_id(dag_run.run_id)
    expected_settings = job_settings_from_params({**dict(fresh_dag.params), **conf})
    args = values["application_args"]
    # The default runtime's model, converted into the worker's model cache.
    model = Path(args[args.index("--model") + 1])
    assert model.parent == Path(os.environ["FRUITS_MODEL_CACHE"])
    assert model.name.startswith("mobilenet_v2-litert-224px-")
    assert args == build_job_arguments(
        expected_settings,
        input_uri=str(sample_dataset.resolve()),
        output_uri=str(local_env / DAG_ID),
        run_id=run_key,
        model_uri=str(model),
        feature_cache_uri=str(local_env / "_feature_cache"),
    )
    assert values["run_dir"] == str(local_env / DAG_ID / run_key)  # the folder names the DAG
    assert values["py_files"].endswith("spark_jobs.zip")
    assert values["application"].endswith("entrypoint.py")
    # The package is built outside the run folder: the job replaces that folder as a whole.
    assert not values["py_files"].startswith(values["run_dir"])
    assert values["env_vars"]["PYSPARK_PYTHON"] == sys.executable


@pytest.mark.slow  # the same conversion, unless this worker already made the model
def test_the_feature_cache_param_off_gives_the_job_no_cache(
    fresh_dag, airflow_db, local_env, sample_dataset
):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    conf = {"dataset_dir": str(sample_dataset), "weights": "none", "feature_cache": False}
    dag_run = fresh_dag.test(
        run_conf=conf,
        mark_success_pattern="run_feature_job|check_results|build_report|publish_results",
    )
    assert _states(dag_run)["prepare_spark_job"] == "success"
    with create_session() as session:
        (pulled,) = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id,
                dag_ids=DAG_ID,
                task_ids="prepare_spark_job",
                key="application_args",
            )
        ).all()
    assert "--feature-cache" not in XComModel.deserialize_value(pulled)


def test_missing_dataset_fails_validation_without_retry(fresh_dag, airflow_db, local_env, tmp_path):
    dag_run = fresh_dag.test(run_conf={"dataset_dir": str(tmp_path / "nope"), "weights": "none"})

    states = _states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["validate_dataset"] == "failed"
    assert states["run_feature_job"] == "upstream_failed"
    ti = dag_run.get_task_instance("validate_dataset")
    assert ti.try_number == 1  # AirflowFailException: no pointless retry of bad input
    assert not local_env.exists()


def test_inconsistent_params_fail_validation(fresh_dag, airflow_db, local_env, sample_dataset):
    conf = {"dataset_dir": str(sample_dataset), "pca_k": None, "pca_variance": None}

    dag_run = fresh_dag.test(run_conf=conf)

    assert _states(dag_run)["validate_dataset"] == "failed"
    assert not local_env.exists()


def test_missing_spark_connection_fails_without_retry(
    fresh_dag, airflow_db, local_env, sample_dataset, monkeypatch
):
    # Without it the provider would silently fall back to master "yarn".
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_LOCAL")

    dag_run = fresh_dag.test(run_conf={"dataset_dir": str(sample_dataset), "weights": "none"})

    states = _states(dag_run)
    assert states["validate_dataset"] == "success"
    assert states["prepare_spark_job"] == "failed"
    assert dag_run.get_task_instance("prepare_spark_job").try_number == 1
    assert states["run_feature_job"] == "upstream_failed"
    assert not (local_env / DAG_ID / "_packages").exists()


# The task bodies are plain functions of include/ (tests/include/local/test_tasks.py etc.):
# here, only that each task calls its function with what the task receives.
WIRED = {
    # task id: (the function's module, its name, the task's arguments, the call expected)
    "validate_dataset": (
        "include.local.tasks",
        "validate_dataset",
        {"params": {"mode": "mini"}},
        (({"mode": "mini"},), {}),
    ),
    "skip_if_unchanged": (
        "dags.fruits_local_pipeline",
        "skip_unchanged_run",
        {"dataset": {"d": 1}, "params": {"force": True}, "run_id": "r1"},
        (("local", {"force": True}), {"plan": {"d": 1}, "run_id": "r1"}),
    ),
    "prepare_spark_job": (
        "include.local.tasks",
        "prepare_spark_job",
        {"dataset": {"d": 1}, "params": {"force": True}, "run_id": "r1"},
        (({"d": 1}, {"force": True}), {"run_id": "r1"}),
    ),
    "check_results": ("include.local.tasks", "check_results", {"run_dir": "/r"}, (("/r",), {})),
    "build_report": ("include.local.tasks", "build_report", {"run_dir": "/r"}, (("/r",), {})),
}


@pytest.mark.parametrize("task_id", list(WIRED))
def test_each_task_calls_its_include_function(task_id, dag, monkeypatch):
    assert_task_calls(dag.get_task(task_id), WIRED[task_id], monkeypatch)
