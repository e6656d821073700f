"""
### Fruits features on local Spark

The same Spark job as `fruits_emr_pipeline` (MobileNetV2 features + MLlib PCA on
Fruits-360 images), run on this machine with `spark-submit --master local[*]`: develop and
check results on a laptop before paying for a cluster.

1. **validate_dataset**: the folder (Param `dataset_dir`, else `FRUITS_DATA_DIR`, else
   `data/fruits-360-sample`) has the `<Split>/<Label>/<image>` layout; the Params are
   consistent. Bad input fails here, without a retry.
   **skip_if_unchanged**: the dataset manifest + run fingerprint equal the last successful
   run's (`<results>/_last_success.json`) and its folder still has `_SUCCESS`: every
   later task is *skipped*, the log names that run and its report, the run ends success.
   The `force` Param reruns anyway.
2. **prepare_spark_job**: builds the job package (`include/staging/job_package.py`) and the job's
   arguments (`include/params/job_args.py`, shared with the EMR DAG), with the feature cache
   `<results>/_feature_cache/` unless the `feature_cache` Param is off: images featurised
   before by the same model are not featurised again.
3. **run_feature_job**: the apache-spark provider's `SparkSubmitOperator` on the
   `spark_local` connection (`AIRFLOW_CONN_SPARK_LOCAL='{"conn_type": "spark", "host":
   "local[*]"}'`, set by `make run` and docker-compose); the job's refusal of its input
   (exit 2: no readable image, bad weights file) fails the task at once, with the job's
   reason, instead of being retried.
4. **check_results**: the run's `_SUCCESS` marker and `metrics.json` exist.
5. **build_report**: `report/report.html` with the plots (`include/results/report.py`).
6. **publish_results**: `manifest.json` + `fingerprint.json` in the run's folder, the
   last-success record, and events for the `fruits_features_pca` / `fruits_features_features`
   Assets (extra: where the output is, counts, fingerprint).

Results of a run go to `FRUITS_RESULTS_DIR/<run id>/` (default `data/results/`), where the run
id is the Airflow run id made filesystem-safe; rerunning replaces that folder only.
"""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, chain, dag, get_current_context, task

from include.local.operators import SparkJobSubmitOperator
from include.params.common import guard_params, job_params
from include.params.defaults import DAG_START_DATE, dag_default_args
from include.params.job_args import safe_run_id
from include.results.assets import FEATURES_ASSET, PCA_ASSET

DAG_ID = "fruits_local_pipeline"
SPARK_CONN_ID = "spark_local"
PACKAGES_DIRNAME = "_packages"  # <results>/_packages/<run id>/: the job zip of each run
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


def _local_params() -> dict[str, Param]:
    params = {**job_params(), **guard_params(emr=False)}
    params["dataset_dir"] = Param(
        None,
        type=["null", "string"],
        title="Dataset folder",
        description="Local Fruits-360-style folder (<Split>/<Label>/<image>). Empty = "
        "FRUITS_DATA_DIR, else data/fruits-360-sample.",
    )
    return params


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,  # one local Spark at a time: two would fight for the cores and memory
    params=_local_params(),
    default_args=dag_default_args(retry_delay=timedelta(seconds=30)),
    tags=["fruits", "local", "spark"],
    doc_md=__doc__,
)
def fruits_local_pipeline() -> None:
    @task
    def validate_dataset() -> dict[str, Any]:
        """Check the Params and the dataset folder; return the folder and its counts."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.config import load_config
        from include.datasets.local import DatasetError
        from include.datasets.local import validate_dataset as check_folder
        from include.params.common import job_settings_from_params

        params = get_current_context()["params"]
        data_dir = Path(params.get("dataset_dir") or load_config().data_dir).expanduser()
        try:
            job_settings_from_params(params)
            summary = check_folder(data_dir)
        except (DatasetError, ValueError) as exc:
            # Bad input: a retry would fail the same way.
            raise AirflowFailException(str(exc)) from exc
        print(f"dataset {data_dir}: {summary.images} images, {len(summary.labels)} labels")
        return {"dataset_dir": str(data_dir.resolve()), **summary.to_dict()}

    @task.short_circuit
    def skip_if_unchanged(dataset: dict[str, Any]) -> dict[str, Any] | None:
        """Fingerprint the run; None (skip every later task) when it is unchanged."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.config import load_config
        from include.params.common import guard_settings_from_params, job_settings_from_params
        from include.reruns.skip import local_check_unchanged

        context = get_current_context()
        params = context["params"]
        try:
            return local_check_unchanged(
                job_settings_from_params(params),
                Path(dataset["dataset_dir"]),
                load_config().results_dir,
                force=guard_settings_from_params(params, emr=False).force,
                run_key=safe_run_id(context["run_id"]),
            )
        except (FileNotFoundError, ValueError) as exc:  # bad input: a retry fails the same way
            raise AirflowFailException(str(exc)) from exc

    @task(multiple_outputs=True)
    def prepare_spark_job(dataset: dict[str, Any]) -> dict[str, Any]:
        """Build the job package and the spark-submit arguments of this run."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

        from include.config import load_config
        from include.params.common import guard_settings_from_params, job_settings_from_params
        from include.params.job_args import CONVERTED_RUNTIMES, build_job_arguments
        from include.staging.job_package import build_job_package

        try:
            BaseHook.get_connection(SPARK_CONN_ID)
        except AirflowNotFoundException as exc:
            # Without it the provider silently falls back to master "yarn".
            raise AirflowFailException(
                f"no '{SPARK_CONN_ID}' connection: set AIRFLOW_CONN_SPARK_LOCAL="
                '\'{"conn_type": "spark", "host": "local[*]"}\' (make run and docker-compose do)'
            ) from exc
        context = get_current_context()
        run_key = safe_run_id(context["run_id"])
        config = load_config()
        # Outside the run folder: the job replaces <results>/<run id>/ as a whole.
        try:
            settings = job_settings_from_params(context["params"])
            guards = guard_settings_from_params(context["params"], emr=False)
            package = build_job_package(
                config.results_dir / PACKAGES_DIRNAME / run_key, runtime=settings.runtime
            )
        except FileNotFoundError as exc:  # an incomplete checkout: a retry cannot fix it
            raise AirflowFailException(str(exc)) from exc
        model_uri = None
        if settings.runtime in CONVERTED_RUNTIMES:
            # Converted once into the worker's model cache (reused while the weights and
            # image size are unchanged); the job checks it and never imports TensorFlow.
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
            model_uri = str(path)
        return {
            "application": str(package.entry_script),
            "py_files": str(package.py_files),
            "application_args": build_job_arguments(
                settings,
                input_uri=dataset["dataset_dir"],
                output_uri=str(config.results_dir),
                run_id=run_key,
                model_uri=model_uri,
                feature_cache_uri=(
                    str(config.local_feature_cache) if guards.feature_cache else None
                ),
            ),
            # Spark's Python workers must run this environment's interpreter.
            "env_vars": {
                "PYSPARK_PYTHON": sys.executable,
                "PYSPARK_DRIVER_PYTHON": sys.executable,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "SPARK_LOCAL_IP": "127.0.0.1",  # loopback only, like the driver
            },
            "run_dir": str(config.results_dir / run_key),
        }

    @task
    def check_results(run_dir: str) -> str:
        """Fail unless the job published its results (``_SUCCESS`` is written last)."""
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

    @task
    def build_report(run_dir: str) -> str:
        """Write ``<run_dir>/report/report.html`` and return its path."""
        from include.results.report import build_report as write_report

        report = write_report(Path(run_dir))
        print(f"report: {report}")
        return str(report)

    @task(outlets=[PCA_ASSET, FEATURES_ASSET])
    def publish_results(run_dir: str, run_info: dict[str, Any]) -> None:
        """Manifest + fingerprint in the run's folder, the last-success record, Asset events."""
        from include.results.publish import local_publish

        context = get_current_context()
        extras = local_publish(run_dir, run_info, dag_id=DAG_ID, run_id=context["run_id"])
        context["outlet_events"][PCA_ASSET].extra = extras["pca"]
        context["outlet_events"][FEATURES_ASSET].extra = extras["features"]

    dataset = validate_dataset()
    run_info = skip_if_unchanged(dataset)
    job = prepare_spark_job(dataset)
    run_feature_job = SparkJobSubmitOperator(
        task_id="run_feature_job",
        conn_id=SPARK_CONN_ID,
        spark_binary=SPARK_SUBMIT,
        application=job["application"],
        py_files=job["py_files"],
        application_args=job["application_args"],
        env_vars=job["env_vars"],
        conf=SPARK_CONF,
        name="fruits-features-local",
    )
    checked = check_results(job["run_dir"])
    report = build_report(checked)
    chain(run_info, job, run_feature_job, checked, report, publish_results(checked, run_info))


fruits_local_pipeline()
