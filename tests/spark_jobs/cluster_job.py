"""The job on ``local-cluster[2,1,1024]`` losing an executor after featurisation.

Run by ``test_job.py`` in its own process (a second SparkContext cannot live in the test
process)::

    python -m tests.spark_jobs.cluster_job DATA OUT MARKERS

Every call of the featurising UDF's input leaves one marker file per row in MARKERS
(a test-only wrapper around ``featurize_column``). Just before the PCA starts, one of
the two executors is killed, with the blocks and shuffle files it held. Prints one JSON
line: the job's counts, the markers written and the executors before/after.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid


def _mark(folder: str, content: bytes | None) -> bytes | None:
    with open(os.path.join(folder, uuid.uuid4().hex), "w"):
        pass
    return content


def _executor_ids(spark) -> list[str]:
    ids = str(spark.sparkContext._jsc.sc().getExecutorIds().mkString(","))
    return [i for i in ids.split(",") if i]


def main(data: str, out: str, markers: str) -> int:
    from pyspark.sql import functions as F

    from spark_jobs import cli, features, pca
    from spark_jobs.session import build_session

    spark = build_session(
        master="local-cluster[2,1,1024]",
        app_name="fruits-features-executor-loss",
        extra_conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"},
    )
    deadline = time.monotonic() + 120
    while len(_executor_ids(spark)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    executors_before = _executor_ids(spark)

    real_featurize, real_fit = features.featurize_column, pca.fit_transform
    mark = F.udf(lambda c: _mark(markers, c), "binary").asNondeterministic()

    def counting_featurize(content, *args, **kwargs):
        return real_featurize(mark(content), *args, **kwargs)

    def fit_after_losing_an_executor(*args, **kwargs):
        spark.sparkContext._jsc.sc().killExecutor(executors_before[0])
        while executors_before[0] in _executor_ids(spark) and time.monotonic() < deadline:
            time.sleep(0.5)
        return real_fit(*args, **kwargs)

    features.featurize_column = counting_featurize
    pca.fit_transform = fit_after_losing_an_executor
    argv = [
        "--input", data, "--output", out, "--run-id", "lost", "--weights", "none",
        "--image-size", "32", "--batch-size", "8", "--task-slots", "2", "--pca-k", "2",
    ]  # fmt: skip
    metrics = cli.run(cli.parse_args(argv))
    result = {
        "valid_images": metrics["counts"]["valid_images"],
        "total_files": metrics["counts"]["total_files"],
        "markers": len(os.listdir(markers)),
        "executors_before": executors_before,
        "executors_after": _executor_ids(spark),
    }
    print(json.dumps(result))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
