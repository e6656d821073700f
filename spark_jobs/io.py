"""Reading the images (one file each, or packed parquet shards) and writing a run.

Every filesystem call goes through Hadoop's FileSystem API (``spark._jvm``), so the same
code works on local paths, ``file:`` URIs and ``s3://`` (EMRFS on EMR).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.transforms import IMAGE_GLOB

InputFormat = Literal["auto", "images", "packed"]
PACKED_COLUMNS = ("path", "split", "label", "content", "length")
SUCCESS_MARKER = "_SUCCESS"
METRICS_FILE = "metrics.json"


def qualify(uri: str) -> str:
    """A URI Spark and Hadoop read the same way: bare local paths become absolute
    ``file:`` URIs (a relative path would otherwise depend on the working directory,
    and on a cluster a bare path means HDFS)."""
    if urlparse(uri).scheme:
        stripped = uri.rstrip("/")
        return stripped if not stripped.endswith(":") else uri
    return "file://" + str(Path(uri).expanduser().resolve())


def _fs_and_path(spark: SparkSession, uri: str):
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    return fs, path


def exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.exists(path))


def delete(spark: SparkSession, uri: str) -> bool:
    """Delete ``uri`` recursively; True if something was deleted."""
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.exists(path) and fs.delete(path, True))


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write (overwrite) a small UTF-8 text file."""
    fs, path = _fs_and_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def copy_to_local(spark: SparkSession, uri: str, local_path: Path) -> Path:
    """Copy a file from any Hadoop filesystem (s3://, file:) to a local path."""
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"{uri} does not exist")
    local_path.parent.mkdir(parents=True, exist_ok=True)
    fs.copyToLocalFile(False, path, spark._jvm.org.apache.hadoop.fs.Path(str(local_path)), True)
    return local_path


def detect_format(spark: SparkSession, input_uri: str) -> Literal["images", "packed"]:
    """``packed`` when the input folder holds ``*.parquet`` files at its top level."""
    fs, path = _fs_and_path(spark, input_uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"input {input_uri} does not exist")
    for status in fs.listStatus(path):
        if status.isFile() and status.getPath().getName().endswith(".parquet"):
            return "packed"
    return "images"


def _normalise_uri(uri: str) -> str:
    # binaryFile's `path` column is the raw path ("file:/a b.jpg"); inputFiles() gives
    # URL-encoded URIs ("file:///a%20b.jpg"). Compare them in one form.
    uri = unquote(uri)
    return "file:/" + uri[len("file:///") :] if uri.startswith("file:///") else uri


def read_images(spark: SparkSession, input_uri: str) -> DataFrame:
    """Image files under ``input_uri`` (recursive, case-insensitive jpg/jpeg/png).

    Columns: ``uri`` (string), ``content`` (binary), ``length`` (long). Zero-byte files,
    which binaryFile drops silently, are added back with empty content so that they are
    counted as bad files instead of vanishing.
    """
    raw = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", IMAGE_GLOB)
        .load(input_uri)
        .select(F.col("path").alias("uri"), "content", "length")
    )
    # One JVM call for the whole listing (iterating a Java array through py4j costs a
    # round trip per file: minutes for ~90k files on S3).
    listing = spark._jvm.org.apache.hadoop.util.StringUtils.join("\n", raw._jdf.inputFiles())
    listed = [_normalise_uri(u) for u in str(listing).split("\n") if u]
    if not listed:
        raise NoInputFilesError(f"no .jpg/.jpeg/.png files under {input_uri}")
    scanned_count = raw.count()  # path-only scan: binaryFile does not read content here
    if scanned_count < len(listed):
        scanned = {r.uri for r in raw.select("uri").collect()}
        empty = sorted(u for u in listed if u not in scanned)
        empty_df = spark.createDataFrame(
            [(u, bytearray(), 0) for u in empty],
            T.StructType(
                [
                    T.StructField("uri", T.StringType()),
                    T.StructField("content", T.BinaryType()),
                    T.StructField("length", T.LongType()),
                ]
            ),
        )
        raw = raw.unionByName(empty_df)
    return raw


def read_packed(spark: SparkSession, input_uri: str) -> DataFrame:
    """Packed parquet shards (see :mod:`spark_jobs.packing`) as ``uri, content, length``."""
    df = spark.read.parquet(input_uri)
    missing = [c for c in PACKED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{input_uri} does not look like packed images: missing columns {missing}")
    return df.select(F.col("path").alias("uri"), "content", "length")


def read_input(
    spark: SparkSession, input_uri: str, input_format: InputFormat
) -> tuple[DataFrame, str]:
    """Read either form; returns the frame and the format actually used."""
    fmt = detect_format(spark, input_uri) if input_format == "auto" else input_format
    df = read_packed(spark, input_uri) if fmt == "packed" else read_images(spark, input_uri)
    return df, fmt


class NoInputFilesError(RuntimeError):
    """The input holds no image files at all."""


def write_tables(run_uri: str, *, features: DataFrame, pca: DataFrame) -> None:
    """Write ``features/`` and ``pca/`` parquet under ``run_uri`` (replacing them)."""
    features.write.mode("overwrite").parquet(f"{run_uri}/features")
    pca.write.mode("overwrite").parquet(f"{run_uri}/pca")


def write_metrics_and_mark_success(
    spark: SparkSession, run_uri: str, metrics: dict[str, Any]
) -> None:
    """Write ``metrics.json``, then the ``_SUCCESS`` marker, in that order.

    Readers must treat a run folder without ``_SUCCESS`` as not published.
    """
    write_text(
        spark, f"{run_uri}/{METRICS_FILE}", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"
    )
    write_text(spark, f"{run_uri}/{SUCCESS_MARKER}", "")
