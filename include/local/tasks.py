"""Task bodies of the local DAG (``fruits_local_pipeline``): plain functions, called by the
DAG's tasks in a line or two and tested without Airflow.

Bad input fails with ``AirflowFailException`` (no retry: a retry fails the same way). The
skip decision is :func:`include.reruns.skip.skip_if_unchanged`, shared with the EMR DAGs.
Heavy imports stay inside the functions: the DAG file imports this module at parse time.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.params.plan_types import LocalDataset, LocalJob

SPARK_CONN_ID = "spark_local"
PACKAGES_DIRNAME = "_packages"  # <results>/<dag id>/_packages/<run id>/: each run's job zip
# spark-submit of the interpreter's own environment (pyspark's wheel installs it beside
# python); the provider only accepts a bare name from a connection, so pass it here.
_VENV_SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")
SPARK_SUBMIT = str(_VENV_SPARK_SUBMIT) if _VENV_SPARK_SUBMIT.exists() else "spark-submit"

# Local runs stay on loopback and open no web UI port (several runs may share a machine).
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # Spark's INFO lines (thousands per run) would bury the job's own log in the task log.
    "spark.log.level": "WARN",
}


def validate_dataset(params: Mapping[str, Any]) -> LocalDataset:
    """Check the Params and the dataset folder; return the folder and its counts."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.config import load_config
    from include.datasets.local import DatasetError
    from include.datasets.local import validate_dataset as check_folder
    from include.params.common import job_settings_from_params
    from include.staging.weights import WeightsUnavailableError

    data_dir = Path(params.get("dataset_dir") or load_config().data_dir).expanduser()
    try:
        settings = job_settings_from_params(params)
        summary = check_folder(data_dir)
        check_local_weights(settings.weights, settings.runtime, settings.image_size)
    except (DatasetError, ValueError, WeightsUnavailableError) as exc:
        # Bad input: a retry would fail the same way.
        raise AirflowFailException(str(exc)) from exc
    print(f"dataset {data_dir}: {summary.images} images, {len(summary.labels)} labels")
    return {"dataset_dir": str(data_dir.resolve()), **summary.to_dict()}


def check_local_weights(weights: str, runtime: str, image_size: int) -> None:
    """The run's ``imagenet`` weights, resolved before the job starts: the local job (keras)
    or the model conversion (litert/onnx, unless the converted model is in the worker's
    cache) loads them on this machine. Raises ``WeightsUnavailableError`` saying what to do."""
    from include.params.job_args import CONVERTED_RUNTIMES
    from include.staging.model import imagenet_model_staged
    from include.staging.weights import check_run_weights

    if weights != "imagenet":
        return
    if runtime in CONVERTED_RUNTIMES and imagenet_model_staged(runtime, image_size):
        print(f"weights: imagenet, its {runtime} model is in the worker's cache")
        return
    print(f"weights: {check_run_weights(weights, imagenet_loaded_here=True).reason}")


def prepare_spark_job(dataset: LocalDataset, params: Mapping[str, Any], *, run_id: str) -> LocalJob:
    """Build the job package and the spark-submit arguments of this run."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

    from include.config import load_config
    from include.params.common import guard_settings_from_params, job_settings_from_params
    from include.params.job_args import build_job_arguments, safe_run_id
    from include.params.run_paths import LOCAL_DAG_ID, run_results_dir
    from include.staging.job_package import build_job_package

    try:
        BaseHook.get_connection(SPARK_CONN_ID)
    except AirflowNotFoundException as exc:
        # Without it the provider silently falls back to master "yarn".
        raise AirflowFailException(
            f"no '{SPARK_CONN_ID}' connection: set AIRFLOW_CONN_SPARK_LOCAL="
            '\'{"conn_type": "spark", "host": "local[*]"}\' (make run and docker-compose do)'
        ) from exc
    run_key = safe_run_id(run_id)
    config = load_config()
    run_dir = run_results_dir(config.results_dir, LOCAL_DAG_ID, run_id)
    # Outside the run folder: the job replaces <results>/<dag id>/<run id>/ as a whole.
    try:
        settings = job_settings_from_params(params)
        guards = guard_settings_from_params(params, emr=False)
        package = build_job_package(
            run_dir.parent / PACKAGES_DIRNAME / run_key, runtime=settings.runtime
        )
    except FileNotFoundError as exc:  # an incomplete checkout: a retry cannot fix it
        raise AirflowFailException(str(exc)) from exc
    return {
        "application": str(package.entry_script),
        "py_files": str(package.py_files),
        "application_args": build_job_arguments(
            settings,
            input_uri=dataset["dataset_dir"],
            output_uri=str(run_dir.parent),
            run_id=run_key,
            model_uri=_local_model_uri(settings),
            feature_cache_uri=(str(config.local_feature_cache) if guards.feature_cache else None),
        ),
        # Spark's Python workers must run this environment's interpreter.
        "env_vars": {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SPARK_LOCAL_IP": "127.0.0.1",  # loopback only, like the driver
        },
        "run_dir": str(run_dir),
    }


def _local_model_uri(settings: Any) -> str | None:
    """The converted model of a litert/onnx run (None for keras): converted once into the
    worker's model cache, reused while the weights and image size are unchanged; the job
    checks it and never imports TensorFlow."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.params.job_args import CONVERTED_RUNTIMES

    if settings.runtime not in CONVERTED_RUNTIMES:
        return None
    from include.staging.model import local_model
    from spark_jobs.runtimes import WeightsError

    weights = settings.weights
    weights_file = None if weights in ("imagenet", "none") else Path(weights)
    if weights_file is not None and not weights_file.is_file():
        raise AirflowFailException(f"weights file {weights_file} does not exist")
    try:
        path, _spec, converted = local_model(
            settings.runtime, weights, settings.image_size, weights_file=weights_file
        )
    except WeightsError as exc:
        raise AirflowFailException(str(exc)) from exc
    print(f"model {path} ({'converted now' if converted else 'from the cache'})")
    return str(path)


def check_results(run_dir: str) -> str:
    """Fail unless the job published its results (``_SUCCESS`` is written last); then remove
    the run's job package."""
    folder = Path(run_dir)
    missing = [name for name in ("_SUCCESS", "metrics.json") if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(
            f"the Spark job reported success but {folder} lacks {', '.join(missing)}: "
            "the results are incomplete"
        )
    # The job package was only needed by spark-submit (kept on failure for the retry).
    shutil.rmtree(folder.parent / PACKAGES_DIRNAME / folder.name, ignore_errors=True)
    return run_dir


def build_report(run_dir: str) -> str:
    """Write ``<run_dir>/report/report.html`` and return its path."""
    from include.results.report import build_report as write_report

    report = write_report(Path(run_dir))
    print(f"report: {report}")
    return str(report)
