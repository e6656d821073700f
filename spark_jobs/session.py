"""The one place that builds the job's SparkSession."""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

APP_NAME = "fruits-features"

# Small so that thousands of ~5 KB images are not packed into a single partition per
# 128 MB split: Spark then spreads them over every core (the default, 4 MB, counts each
# file as 4 MB and gives one partition per ~32 images on a 2-core machine).
OPEN_COST_BYTES = 64 * 1024


def build_session(
    *,
    master: str | None = None,
    app_name: str = APP_NAME,
    batch_size: int = 64,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Create (or reuse) the SparkSession with the job's settings.

    ``master`` is only set when given: under ``spark-submit`` (EMR, local DAG) the
    submit command decides. ``batch_size`` becomes Arrow's ``maxRecordsPerBatch`` so one
    Arrow batch is one inference batch (a decoded 224x224 image is ~0.6 MB of float32:
    large Arrow batches cost GBs per Python worker).
    """
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    conf = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_size),
        "spark.sql.files.openCostInBytes": str(OPEN_COST_BYTES),
        # One Python worker per core is reused across tasks, so the model cached in
        # spark_jobs.features is built once per worker, not once per task.
        "spark.python.worker.reuse": "true",
        "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "true",
        # One Python worker runs per task slot: numpy's OpenBLAS (the PCA's per-partition
        # covariance) must not start a thread per core in each of them (4 threads on 2
        # cores made the fold 1.4x slower). TensorFlow sets its own threads.
        "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
        # TensorFlow's C++ info lines (oneDNN, CPU features) would fill every task's log.
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
    }
    package_root = _package_root_if_not_zipped()
    if package_root is not None:
        # Running from a source checkout (tests, `python -m spark_jobs.cli`): Python
        # workers must import this package too. Under spark-submit --py-files the zip is
        # already on the workers' path and this is skipped.
        current = os.environ.get("PYTHONPATH", "")
        conf["spark.executorEnv.PYTHONPATH"] = os.pathsep.join(
            p for p in (str(package_root), current) if p
        )
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _package_root_if_not_zipped() -> Path | None:
    here = Path(__file__).resolve()
    if not here.is_file():  # imported from a zip given with --py-files
        return None
    return here.parent.parent
