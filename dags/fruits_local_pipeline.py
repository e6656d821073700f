"""
### Fruits features on local Spark

The same Spark job as `fruits_emr_pipeline` (MobileNetV2 features + MLlib PCA on
Fruits-360 images), run on this machine with `spark-submit --master local[*]`: develop and
check results on a laptop before paying for a cluster.

1. **validate_dataset**: the folder (Param `dataset_dir`, else `FRUITS_DATA_DIR`, else
   `data/fruits-360-sample`) has the `<Split>/<Label>/<image>` layout; the Params are
   consistent. Bad input fails here, without a retry.
   **skip_if_unchanged**: the dataset manifest + run fingerprint equal the last successful
   run's (`<results>/<dag id>/_last_success.json`) and its folder still has `_SUCCESS`: every
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

Results of a run go to `FRUITS_RESULTS_DIR/<dag id>/<run id>/` (default `data/results/`),
where the run id is the Airflow run id made filesystem-safe; rerunning replaces that folder only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, chain, task

from include.local import tasks as local_tasks
from include.local.operators import SparkJobSubmitOperator
from include.local.tasks import SPARK_CONF, SPARK_CONN_ID, SPARK_SUBMIT
from include.params.common import local_params
from include.params.defaults import DAG_START_DATE, dag_default_args
from include.params.plan_types import LocalDataset, LocalJob, RunInfo
from include.reruns.skip import skip_if_unchanged as skip_unchanged_run
from include.results.assets import FEATURES_ASSET, PCA_ASSET

DAG_ID = "fruits_local_pipeline"

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,  # one local Spark at a time: two would fight for the cores and memory
    params=local_params(),
    default_args=dag_default_args(retry_delay=timedelta(seconds=30)),
    tags=["fruits", "local", "spark"],
    doc_md=__doc__,
):

    @task
    def validate_dataset(**context: Any) -> LocalDataset:
        """Check the Params and the dataset folder; return the folder and its counts."""
        return local_tasks.validate_dataset(context["params"])

    @task.short_circuit
    def skip_if_unchanged(dataset: LocalDataset, **context: Any) -> RunInfo | None:
        """Fingerprint the run; None (skip every later task) when it is unchanged."""
        return skip_unchanged_run(
            "local", context["params"], plan=dataset, run_id=context["run_id"]
        )

    @task(multiple_outputs=True)
    def prepare_spark_job(dataset: LocalDataset, **context: Any) -> LocalJob:
        """Build the job package and the spark-submit arguments of this run."""
        return local_tasks.prepare_spark_job(dataset, context["params"], run_id=context["run_id"])

    @task
    def check_results(run_dir: str) -> str:
        """Fail unless the job published its results (``_SUCCESS`` is written last)."""
        return local_tasks.check_results(run_dir)

    @task
    def build_report(run_dir: str) -> str:
        """Write ``<run_dir>/report/report.html`` and return its path."""
        return local_tasks.build_report(run_dir)

    @task(outlets=[PCA_ASSET, FEATURES_ASSET])
    def publish_results(run_dir: str, run_info: RunInfo, **context: Any) -> None:
        """Manifest + fingerprint in the run's folder, the last-success record, Asset events."""
        from include.results.publish import local_publish

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

    chain(
        # RUN SETUP: the Params and the folder checked; an unchanged run skips the rest
        run_info,
        job,
        # RUN BODY: the job on local Spark, its results checked, reported, published
        run_feature_job,
        checked,
        build_report(checked),
        publish_results(checked, run_info),
    )
    # No RUN TEARDOWN: local Spark leaves nothing running when spark-submit ends.
