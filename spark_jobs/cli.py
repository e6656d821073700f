"""Command line of the Spark job: read images, featurise with MobileNetV2, fit PCA, publish.

Locally (the package on the path, the venv's Python for the workers)::

    PYSPARK_PYTHON=.venv/bin/python python -m spark_jobs.cli --master 'local[*]' \\
        --input data/fruits-360-sample --output data/results --run-id demo \\
        --mode mini --max-images 200 --weights none

On EMR (or any cluster), with the package zipped for the executors::

    spark-submit --deploy-mode cluster --py-files spark_jobs.zip entrypoint.py \\
        --input s3://BUCKET/fruits/dataset/packed --output s3://BUCKET/fruits/results \\
        --run-id 2026-01-01T00-00 --mode full --pca-variance 0.95 \\
        --weights s3://BUCKET/fruits/models/mobilenet_v2.weights.h5 --runtime litert \\
        --model s3://BUCKET/fruits/models/mobilenet_v2-litert-224px-<key>.zip \\
        --feature-cache s3://BUCKET/fruits/feature-cache/

Outputs under ``<output>/<run_id>/``: ``features/`` and ``pca/`` parquet, ``metrics.json``
and, written last, ``_SUCCESS``. An attempt writes to ``<output>/<run_id>.tmp-<attempt>/``
and replaces ``<run_id>/`` only once it succeeded: a failed rerun leaves the previous run
(and its ``_SUCCESS``) untouched. Exit codes: 0 success, 2 no usable input
(no valid images, bad weights, bad arguments, a feature cache of another model), 1 anything
else. With ``--feature-cache`` only images not featurised before by the same model are
featurised (:mod:`spark_jobs.feature_cache`); the outputs are the same.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import sys
import time
import uuid
from typing import Any

from spark_jobs import FEATURE_DIM
from spark_jobs.selection import NoValidImagesError
from spark_jobs.versions import feature_versions, package_versions

log = logging.getLogger("spark_jobs")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
IMAGES_PER_TASK = 2000
# Featurised rows (good and bad) of an attempt, read back for counts, PCA and projection.
STAGED_DIR = "_featurized"
# The reason spark_jobs.features.decode_image gives an empty file (a test checks they
# agree): zero-byte files never reach the UDF, binaryFile's scan drops them.
EMPTY_FILE_REASON = "empty file (0 bytes)"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The job's flags (``include/params/job_args.py`` builds them on the Airflow side)."""
    p = argparse.ArgumentParser(
        prog="spark_jobs", description="MobileNetV2 features + MLlib PCA on Fruits-360 images"
    )
    p.add_argument(
        "--input",
        required=True,
        help="dataset folder (<split>/<Label>/<file>) "
        "or folder of packed parquet shards; local path or s3:// URI",
    )
    p.add_argument(
        "--output", required=True, help="results base; the run goes to <output>/<run-id>/"
    )
    p.add_argument("--run-id", required=True)
    p.add_argument("--mode", choices=("mini", "full"), default="mini")
    p.add_argument("--max-images", type=_positive_int, help="mini only: at most N images")
    p.add_argument("--per-class", type=_positive_int, help="mini only: at most N images per label")
    p.add_argument("--seed", type=int, default=42, help="seed of the mini sample")
    pca = p.add_mutually_exclusive_group()
    pca.add_argument(
        "--pca-variance",
        type=_fraction,
        help="keep the fewest components reaching this explained variance (default 0.95)",
    )
    pca.add_argument("--pca-k", type=_positive_int, help="keep exactly K components")
    p.add_argument(
        "--pca-solver",
        choices=("gram", "mllib"),  # = spark_jobs.pca.SOLVERS (no pyspark import here)
        default="gram",
        help="gram: one pass, BLAS-3 covariance per partition + LAPACK on the driver "
        "(default); mllib: MLlib's PCA.fit (same result, 5-10x slower fit)",
    )
    p.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet | none (random, tests only) | weights file path or s3:// URI",
    )
    p.add_argument(
        "--runtime",
        choices=("litert", "onnx", "keras"),  # = spark_jobs.runtimes.RUNTIMES
        default="litert",
        help="what runs MobileNetV2 on the executors: litert (default) or onnx (a model "
        "converted once per run, no TensorFlow on the executors), or keras (TensorFlow)",
    )
    p.add_argument(
        "--model",
        help="litert/onnx: the converted model file (local path or s3:// URI) made from "
        "--weights and --image-size (checked); without it the driver converts once",
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--input-format", choices=("auto", "images", "packed"), default="auto")
    p.add_argument(
        "--task-slots",
        type=_positive_int,
        help="task slots of the cluster (executors x cores each), from the DAG's plan; "
        "default: Spark's defaultParallelism (right for local[N], too low under YARN "
        "dynamic allocation while executors are still registering)",
    )
    p.add_argument(
        "--feature-cache",
        help="feature cache folder (local path or s3:// URI): images whose content and "
        "model are in it are not featurised again; this run's new features are added "
        "(spark_jobs/feature_cache.py). Without it every image is featurised",
    )
    p.add_argument("--master", help="Spark master (only outside spark-submit, e.g. local[2])")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and cross-check the flags (argparse exits with code 2 on errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pca_variance is None and args.pca_k is None:
        args.pca_variance = 0.95
    if not 32 <= args.image_size <= 512:
        parser.error(f"--image-size must be between 32 and 512, got {args.image_size}")
    if args.model and args.runtime == "keras":
        parser.error("--model is a converted model for --runtime litert/onnx, not keras")
    if args.mode == "full" and (args.max_images or args.per_class):
        parser.error("--max-images/--per-class only apply to --mode mini")
    if not args.run_id.strip() or "/" in args.run_id or args.run_id in {".", ".."}:
        parser.error(f"--run-id must be a non-empty name without '/', got {args.run_id!r}")
    return args


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def plan_partitions(total_files: int, task_slots: int) -> int:
    """Featurisation tasks for ``total_files`` images on ``task_slots`` slots.

    One task per slot (measured fastest: fewer, equal tasks), more only for large inputs
    so that a lost task on a cluster costs at most ~``IMAGES_PER_TASK`` images to redo;
    always a whole multiple of the slots so the last wave of tasks is not half idle.
    """
    slots = max(1, task_slots)
    return slots * max(1, math.ceil(total_files / (slots * IMAGES_PER_TASK)))


def _attempt_name(spark: Any) -> str:
    # Unique per attempt (a retried EMR step is a new Spark application).
    return f"{spark.sparkContext.applicationId}-{uuid.uuid4().hex[:8]}".replace("/", "_")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the job; returns the metrics also written to ``metrics.json``.

    Reads the input once (one listing; image files are read only by the featurising
    scan), writes every featurised row to the attempt folder first and reads it back for
    the counts, the PCA and the projection (a lost executor never re-featurises), and
    publishes by replacing ``<output>/<run-id>/`` only after everything succeeded.
    """
    from spark_jobs import io  # noqa: PLC0415 (lazy: loads pyspark and psutil)
    from spark_jobs.features import featurize_column, prepare_model  # noqa: PLC0415 (lazy: loads pandas and pyarrow)
    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    started_at, t0 = _now(), time.perf_counter()
    spark = build_session(master=args.master, batch_size=args.batch_size)
    input_uri, output_base = io.qualify(args.input), io.qualify(args.output)
    run_uri = f"{output_base}/{args.run_id}"
    # Everything is written aside, to <run>.tmp-<attempt>/: a failed (re)run leaves the
    # previous run's folder, and its _SUCCESS, exactly as they were.
    attempt = io.attempt_uri(run_uri, _attempt_name(spark))
    # Under YARN dynamic allocation, defaultParallelism only counts the executors
    # registered so far: the DAG passes the cluster's slots instead.
    slots = args.task_slots or spark.sparkContext.defaultParallelism

    model = prepare_model(
        spark,
        runtime=args.runtime,
        weights=args.weights,
        image_size=args.image_size,
        model_uri=args.model,
    )
    bc_model = spark.sparkContext.broadcast(model.payload)
    try:
        return _run(
            args,
            spark,
            featurize_column,
            model,
            bc_model,
            input_uri=input_uri,
            run_uri=run_uri,
            attempt=attempt,
            slots=slots,
            started_at=started_at,
            t0=t0,
        )
    except BaseException:
        # Nothing half-written: the attempt folder goes, the previous run stays.
        io.delete(spark, attempt)
        raise
    finally:
        bc_model.unpersist()


def _run(
    args: argparse.Namespace,
    spark: Any,
    featurize_column: Any,
    model: Any,
    bc_model: Any,
    *,
    input_uri: str,
    run_uri: str,
    attempt: str,
    slots: int,
    started_at: str,
    t0: float,
) -> dict[str, Any]:
    from pyspark.sql import functions as F  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    from spark_jobs import feature_cache, io, pca, selection, separability  # noqa: PLC0415 (lazy: loads pyspark and pandas)

    selected = selection.select_input(args, spark, input_uri)
    files, input_format, expected = selected.files, selected.input_format, selected.expected
    cache = None
    if args.feature_cache:
        identity = feature_cache.model_identity(
            runtime=args.runtime,
            model_digest=model.digest,
            image_size=args.image_size,
            versions=feature_versions(args.runtime),
        )
        cache = feature_cache.open_cache(spark, io.qualify(args.feature_cache), identity)
        files = cache.mark_reused(files)
    # Featurise straight from the scan, no repartition: a shuffle would move the raw
    # JPEG bytes across the cluster and make reading wait for the whole input. The scan
    # is split into `partitions` pieces by minPartitionNum (packed shards split by row
    # group, image files are packed by size + openCostInBytes).
    # (For shards, counting reads only the `path` column: a few MB for 90k images.)
    size_hint = len(expected) if expected is not None else files.count()
    partitions = plan_partitions(size_hint, slots)
    spark.conf.set("spark.sql.files.minPartitionNum", str(partitions))
    t_read = time.perf_counter()
    # Runtime threads per task = the cores Spark gives each task: never oversubscribed.
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    featurized = files.withColumn(
        "_out",
        featurize_column(
            cache.content_to_featurize() if cache else F.col("content"),
            model,
            bc_model,
            image_size=args.image_size,
            batch_size=args.batch_size,
            threads=threads,
        ),
    ).select(
        "path", "split", "label", "_out.features", "_out.error", *(cache.columns if cache else ())
    )
    # The one action that featurises. Every later step reads these files back, so losing
    # an executor (a spot node) afterwards costs a re-read, never a re-featurisation.
    staged_uri = f"{attempt}/{STAGED_DIR}"
    io.write_parquet(featurized, staged_uri)
    t_feat = time.perf_counter()
    staged = spark.read.parquet(staged_uri)

    counts_rows = (
        staged.groupBy("split", "label", F.col("error").isNull().alias("ok")).count().collect()
    )
    bad_files = [
        {"path": r["path"], "reason": r["error"]}
        for r in staged.filter(F.col("error").isNotNull()).select("path", "error").collect()
    ]
    seen = sum(r["count"] for r in counts_rows)
    if expected is not None and seen < len(expected):
        # binaryFile's scan drops zero-byte files: the listing still has them.
        featurised = {r["path"] for r in staged.select("path").collect()}
        bad_files += [{"path": p, "reason": EMPTY_FILE_REASON} for p in expected - featurised]
    bad_files.sort(key=lambda b: b["path"])
    total_files = len(expected) if expected is not None else seen
    by_split_label: dict[str, dict[str, int]] = {}
    for row in counts_rows:
        if row["ok"]:
            by_split_label.setdefault(row["split"], {})[row["label"]] = row["count"]
    valid = sum(sum(v.values()) for v in by_split_label.values())
    if total_files == 0:
        raise NoValidImagesError(f"no image files under {args.input}")
    if valid == 0:
        raise NoValidImagesError(
            f"none of the {total_files} image files under {args.input} could be decoded "
            f"(first reasons: {sorted({b['reason'] for b in bad_files})[:3]}); "
            "nothing published"
        )
    cache_metrics = None
    if cache:
        # The new features go into the cache now, before the PCA: a run that fails later
        # (or its retry) does not featurise them again.
        cache_metrics = cache.add_new(spark, staged, attempt=attempt)
        staged = cache.fill_reused(staged)
    features_uri = f"{attempt}/features"
    io.write_parquet(
        staged.filter(F.col("error").isNull()).select("path", "split", "label", "features"),
        features_uri,
    )
    good = spark.read.parquet(features_uri)
    if cache:
        cache.check_complete(good.count(), valid)
    projected, pca_result = pca.fit_transform(
        good,
        target_variance=args.pca_variance,
        fixed_k=args.pca_k,
        solver=args.pca_solver,
    )
    t_pca = time.perf_counter()
    io.write_parquet(projected.select("path", "split", "label", "pca"), f"{attempt}/pca")
    io.delete(spark, staged_uri)
    t_write = time.perf_counter()
    # Does the PCA keep the labels apart? A side measurement: it never fails the run.
    separability_metrics = separability.measure_or_absent(
        projected, k=pca_result.k, by_split_label=by_split_label
    )
    t_separability = time.perf_counter()

    by_label: dict[str, int] = {}
    for labels in by_split_label.values():
        for label, n in labels.items():
            by_label[label] = by_label.get(label, 0) + n
    featurize_s = t_feat - t_read
    metrics: dict[str, Any] = {
        "run_id": args.run_id,
        "mode": args.mode,
        "input": args.input,
        "input_format": input_format,
        "output": args.output,
        "started_at": started_at,
        "finished_at": _now(),
        "weights": model.weights.as_dict(),
        "runtime": args.runtime,
        "model": model.model or None,
        "sample": {
            "seed": args.seed,
            "max_images": args.max_images,
            "per_class": args.per_class,
        }
        if args.mode == "mini"
        else None,
        "counts": {
            # Image files in the whole dataset (before a mini-mode sample) vs those read.
            "dataset_images": selected.dataset_images
            if selected.dataset_images is not None
            else total_files,
            "total_files": total_files,
            "valid_images": valid,
            # Features computed by this run / taken from the feature cache.
            "featurized": valid - (cache_metrics["hits"] if cache_metrics else 0),
            "reused": cache_metrics["hits"] if cache_metrics else 0,
            "bad_files": len(bad_files),
            "by_label": dict(sorted(by_label.items())),
            "by_split": {s: sum(v.values()) for s, v in sorted(by_split_label.items())},
            "by_split_label": {
                s: dict(sorted(v.items())) for s, v in sorted(by_split_label.items())
            },
        },
        "bad_files": bad_files,
        "feature_cache": cache_metrics,
        "pca": pca_result.as_dict(),
        "separability": separability_metrics,
        "timings_s": {
            "read": round(t_read - t0, 3),
            "featurize": round(featurize_s, 3),
            "pca": round(t_pca - t_feat, 3),
            "write": round(t_write - t_pca, 3),
            "separability": round(t_separability - t_write, 3),
            "total": round(time.perf_counter() - t0, 3),
        },
        "throughput": {
            "images_per_s_featurize": round(total_files / featurize_s, 2),
            "images_per_s_end_to_end": round(valid / (time.perf_counter() - t0), 2),
            "cores": slots,
        },
        "spark": {
            "master": spark.sparkContext.master,
            "version": spark.version,
            "default_parallelism": spark.sparkContext.defaultParallelism,
            "task_slots": slots,
            "featurize_partitions": partitions,
        },
        "versions": package_versions(args.runtime),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "feature_dim": FEATURE_DIM,
    }
    io.publish_run(spark, attempt, run_uri, metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` and ``python -m spark_jobs.cli``; returns the exit code."""
    from spark_jobs.feature_cache import FeatureCacheError  # noqa: PLC0415 (lazy: loads pyspark and psutil)
    from spark_jobs.io import NoInputFilesError  # noqa: PLC0415 (lazy: loads pyspark and psutil)
    from spark_jobs.pca import PcaInputError  # noqa: PLC0415 (lazy: loads pyspark and pandas)
    from spark_jobs.runtimes import ModelError, WeightsError  # noqa: PLC0415 (lazy: loads numpy)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    try:
        metrics = run(args)
    except (
        NoValidImagesError,
        NoInputFilesError,
        PcaInputError,
        WeightsError,
        ModelError,
        FileNotFoundError,
        FeatureCacheError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    counts, separated = metrics["counts"], metrics["separability"]
    log.info(
        "class separability: %s",
        separated["absent"]
        if "absent" in separated
        else f"Test accuracy {separated['accuracy_at_k']:.3f} on k components, "
        f"{separated['accuracy_full']:.3f} on all features ({separated['seconds']:.1f} s)",
    )
    log.info(
        "run %s: %d valid images, %d bad files, k=%d (%.3f variance), %.1f images/s end to end",
        args.run_id,
        counts["valid_images"],
        counts["bad_files"],
        metrics["pca"]["k"],
        metrics["pca"]["variance_at_k"],
        metrics["throughput"]["images_per_s_end_to_end"],
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
