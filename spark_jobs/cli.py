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
        --model s3://BUCKET/fruits/models/mobilenet_v2-litert-224px-<key>.zip

Outputs under ``<output>/<run_id>/``: ``features/`` and ``pca/`` parquet, ``metrics.json``
and, written last, ``_SUCCESS``. The run folder is emptied first, so a rerun replaces
it; a failed run leaves no ``_SUCCESS``. Exit codes: 0 success, 2 no usable input
(no valid images, bad weights, bad arguments), 1 anything else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import sys
import time
from typing import Any

from spark_jobs import FEATURE_DIM

log = logging.getLogger("spark_jobs")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
IMAGES_PER_TASK = 2000


class NoValidImagesError(RuntimeError):
    """Nothing could be featurised: nothing is published."""


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
    """The job's flags (``include/job_args.py`` builds them on the Airflow side)."""
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


_RUNTIME_PACKAGES = {
    "litert": "ai-edge-litert",
    "onnx": "onnxruntime",
    "keras": "tensorflow-cpu",
}


def _versions(runtime: str) -> dict[str, str]:
    """Versions of what computed the results, from package metadata (nothing imported:
    with litert/onnx the driver has no TensorFlow)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["pyspark", "numpy", "pandas", "pyarrow", "pillow", _RUNTIME_PACKAGES[runtime]]
    found = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # EMR's own pyspark is not a pip distribution
            found[name] = "unknown"
    return found


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the job; returns the metrics also written to ``metrics.json``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from spark_jobs import io, pca, transforms
    from spark_jobs.features import featurize_column, prepare_model
    from spark_jobs.session import build_session

    started_at, t0 = _now(), time.perf_counter()
    spark = build_session(master=args.master, batch_size=args.batch_size)
    input_uri, output_base = io.qualify(args.input), io.qualify(args.output)
    run_uri = f"{output_base}/{args.run_id}"
    model = prepare_model(
        spark,
        runtime=args.runtime,
        weights=args.weights,
        image_size=args.image_size,
        model_uri=args.model,
    )
    bc_model = spark.sparkContext.broadcast(model.payload)
    # Empty the run folder first (once the model is known to be usable): a rerun replaces
    # it, and any failure below leaves no _SUCCESS behind (not even an old one).
    io.delete(spark, run_uri)

    raw, input_format = io.read_input(spark, input_uri, args.input_format)
    files = transforms.with_labels(
        raw.withColumn("path", transforms.relative_path(F.col("uri")))
    ).transform(transforms.image_files_only)
    if args.mode == "mini" and (args.max_images or args.per_class):
        chosen = transforms.deterministic_sample(
            files.select("path", "label"),
            seed=args.seed,
            per_class=args.per_class,
            max_images=args.max_images,
        ).select("path")
        files = files.join(F.broadcast(chosen), on="path", how="left_semi")
    total_files = files.count()
    if total_files == 0:
        raise NoValidImagesError(f"no image files under {args.input}")
    cores = spark.sparkContext.defaultParallelism
    # One partition per core (measured fastest: fewer, equal tasks), more only for large
    # inputs so that a lost task on a cluster costs at most ~2000 images to redo; always a
    # whole multiple of the cores so the last wave of tasks is not half idle.
    partitions = cores * max(1, math.ceil(total_files / (cores * IMAGES_PER_TASK)))
    t_read = time.perf_counter()
    # Runtime threads per task = the cores Spark gives each task: never oversubscribed.
    threads = int(spark.conf.get("spark.task.cpus", "1"))

    featurized = (
        files.repartition(partitions)
        .withColumn(
            "_out",
            featurize_column(
                F.col("content"),
                model,
                bc_model,
                image_size=args.image_size,
                batch_size=args.batch_size,
                threads=threads,
            ),
        )
        .select("path", "split", "label", "_out.features", "_out.error")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        # The one action that featurises: every later step reads the persisted rows.
        counts_rows = (
            featurized.groupBy("split", "label", F.col("error").isNull().alias("ok"))
            .count()
            .collect()
        )
        t_feat = time.perf_counter()
        bad_rows = featurized.filter(F.col("error").isNotNull()).select("path", "error").collect()
        by_split_label: dict[str, dict[str, int]] = {}
        for row in counts_rows:
            if row["ok"]:
                by_split_label.setdefault(row["split"], {})[row["label"]] = row["count"]
        valid = sum(sum(v.values()) for v in by_split_label.values())
        if valid == 0:
            raise NoValidImagesError(
                f"none of the {total_files} image files under {args.input} could be decoded "
                f"(first reasons: {sorted({r['error'] for r in bad_rows})[:3]}); nothing published"
            )
        good = featurized.filter(F.col("error").isNull()).select(
            "path", "split", "label", "features"
        )
        projected, pca_result = pca.fit_transform(
            good,
            target_variance=args.pca_variance,
            fixed_k=args.pca_k,
            solver=args.pca_solver,
        )
        t_pca = time.perf_counter()

        io.write_tables(
            run_uri, features=good, pca=projected.select("path", "split", "label", "pca")
        )
        t_write = time.perf_counter()
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
                "total_files": total_files,
                "valid_images": valid,
                "bad_files": len(bad_rows),
                "by_label": dict(sorted(by_label.items())),
                "by_split": {s: sum(v.values()) for s, v in sorted(by_split_label.items())},
                "by_split_label": {
                    s: dict(sorted(v.items())) for s, v in sorted(by_split_label.items())
                },
            },
            "bad_files": [
                {"path": r["path"], "reason": r["error"]}
                for r in sorted(bad_rows, key=lambda r: r["path"])
            ],
            "pca": pca_result.as_dict(),
            "timings_s": {
                "read": round(t_read - t0, 3),
                "featurize": round(featurize_s, 3),
                "pca": round(t_pca - t_feat, 3),
                "write": round(t_write - t_pca, 3),
                "total": round(time.perf_counter() - t0, 3),
            },
            "throughput": {
                "images_per_s_featurize": round(total_files / featurize_s, 2),
                "images_per_s_end_to_end": round(valid / (time.perf_counter() - t0), 2),
                "cores": cores,
            },
            "spark": {
                "master": spark.sparkContext.master,
                "version": spark.version,
                "default_parallelism": cores,
            },
            "versions": _versions(args.runtime),
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "feature_dim": FEATURE_DIM,
        }
        io.write_metrics_and_mark_success(spark, run_uri, metrics)
        return metrics
    except BaseException:
        # Nothing half-written: a failed run leaves no folder, hence no _SUCCESS.
        io.delete(spark, run_uri)
        raise
    finally:
        featurized.unpersist()
        bc_model.unpersist()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` and ``python -m spark_jobs.cli``; returns the exit code."""
    from spark_jobs.io import NoInputFilesError
    from spark_jobs.pca import PcaInputError
    from spark_jobs.runtimes import ModelError, WeightsError

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
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    counts = metrics["counts"]
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
