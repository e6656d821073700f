"""Pack an image folder into parquet shards *with Spark*: the cluster packs an S3 dataset.

:mod:`spark_jobs.packing` packs a local folder on one machine (the Airflow worker, before
upload). A dataset already in S3 is packed where it lies instead, by this Spark step on
the cluster, before the feature step reads the shards::

    spark-submit --py-files spark_jobs.zip entrypoint.py pack \\
        --input s3://BUCKET/images/ --output s3://BUCKET/fruits/dataset/s3-packed/<digest>

The shards have :data:`spark_jobs.packing.SCHEMA`'s columns (``path``, ``split``,
``label``, ``content``, ``length``), so the job reads them exactly like shards packed on a
worker. Every listed image file is carried, zero-byte ones included (``binaryFile`` drops
those from its scan: they are added from the listing with empty content, and the job
counts them as bad files as it does when it reads the folder itself).

No shuffle: the scan is cut into splits of about ``--shard-mb`` (``maxPartitionBytes``)
and each split is written as one shard, in row groups of ~``ROW_GROUP_BYTES`` so that the
job can split a shard into several tasks. Written aside (``<output>.tmp-<attempt>``) and
renamed to ``<output>`` only when complete, with ``_pack.json`` (counts) and ``_SUCCESS``
last: a failed or half-done pack is never read as a dataset. Exit codes: 0 packed, 2 no
image file under the input, 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from typing import Any

log = logging.getLogger("spark_jobs")

SUMMARY_FILE = "_pack.json"  # leading "_": Spark's parquet reader skips it
ROW_GROUP_BYTES = 4 * 1024 * 1024
"""~800 Fruits-360 images per row group: the job's scan splits shards by row group."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spark_jobs pack", description="pack <split>/<label>/<image> files into shards"
    )
    p.add_argument("--input", required=True, help="image folder (local path or s3:// URI)")
    p.add_argument("--output", required=True, help="folder of the shards (replaced)")
    p.add_argument("--shard-mb", type=int, default=128, help="about this many MB per shard")
    p.add_argument("--master", help="Spark master (only outside spark-submit)")
    return p


def pack(spark: Any, input_uri: str, output_uri: str, *, shard_bytes: int) -> dict[str, Any]:
    """Pack the image files under ``input_uri`` into shards at ``output_uri``; the counts.

    Raises FileNotFoundError when ``input_uri`` does not exist and
    :class:`spark_jobs.io.NoInputFilesError` when it holds no image file.
    """
    from pyspark.sql import functions as F  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    from spark_jobs import io, transforms  # noqa: PLC0415 (lazy: loads pyspark and psutil)
    from spark_jobs.packing import SCHEMA  # noqa: PLC0415 (lazy: loads pyarrow and numpy)

    if shard_bytes < 1:
        raise ValueError("shard_bytes must be positive")
    input_uri, output_uri = io.qualify(input_uri), io.qualify(output_uri)
    t0 = time.perf_counter()
    if not io.exists(spark, input_uri):
        raise FileNotFoundError(f"input {input_uri} does not exist")
    listing = io.list_images(spark, input_uri)
    columns = [field.name for field in SCHEMA]

    def shaped(frame: Any) -> Any:
        return transforms.with_labels(
            frame.withColumn("path", transforms.relative_path(F.col("uri")))
        ).select(*columns)

    # Splits of ~one shard each; the small open cost keeps ~5 KB files from counting 4 MB.
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(shard_bytes))
    attempt = io.attempt_uri(output_uri, f"pack-{uuid.uuid4().hex[:8]}")
    try:
        (
            shaped(listing.frame)
            .write.mode("overwrite")
            .option("compression", "none")  # JPEG bytes do not compress
            .option("parquet.block.size", ROW_GROUP_BYTES)
            .parquet(attempt)
        )
        written = spark.read.parquet(attempt)
        packed = {r["path"] for r in written.select("path").collect()}
        listed = {_relative(uri): uri for uri in listing.uris}
        empty = sorted(set(listed) - packed)
        if empty:  # zero-byte files: binaryFile's scan dropped them
            rows = [(p, *_labels(p), b"", 0) for p in empty]
            (
                spark.createDataFrame(
                    rows, "path string, split string, label string, content binary, length long"
                )
                .coalesce(1)
                .write.mode("append")
                .option("compression", "none")
                .parquet(attempt)
            )
        shards = sum(1 for _ in _parquet_files(spark, attempt))
        summary = {
            "input": input_uri,
            "images": len(packed) + len(empty),
            "empty_files": len(empty),
            "shards": shards,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        io.publish_run(spark, attempt, output_uri, summary, summary_file=SUMMARY_FILE)
    except BaseException:
        io.delete(spark, attempt)
        raise
    return summary


def _relative(uri: str) -> str:
    return "/".join(uri.rstrip("/").split("/")[-3:])


def _labels(relative: str) -> tuple[str, str]:
    parts = relative.split("/")
    return parts[-3] if len(parts) >= 3 else "", parts[-2] if len(parts) >= 2 else ""


def _parquet_files(spark: Any, uri: str) -> list[str]:
    from spark_jobs.io import _fs_and_path  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    fs, path = _fs_and_path(spark, uri)
    return [
        str(s.getPath())
        for s in fs.listStatus(path)
        if s.isFile() and s.getPath().getName().endswith(".parquet")
    ]


def main(argv: list[str] | None = None) -> int:
    """``entrypoint.py pack ...``; returns the exit code."""
    from spark_jobs.io import NoInputFilesError  # noqa: PLC0415 (lazy: loads pyspark and psutil)
    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    if args.shard_mb < 1:
        print("error: --shard-mb must be >= 1", file=sys.stderr)
        return 2
    spark = build_session(master=args.master, app_name="fruits-features-pack")
    try:
        summary = pack(spark, args.input, args.output, shard_bytes=args.shard_mb * 1024 * 1024)
    except (NoInputFilesError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info(
        "packed %d files (%d empty) from %s into %d shard(s) under %s",
        summary["images"],
        summary["empty_files"],
        args.input,
        summary["shards"],
        args.output,
    )
    return 0
