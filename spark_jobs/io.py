"""Reading the images (one file each, or packed parquet shards) and writing a run.

Every filesystem call goes through Hadoop's FileSystem API (``spark._jvm``), so the same
code works on local paths, ``file:`` URIs and ``s3://`` (EMRFS on EMR).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.transforms import IMAGE_GLOB

InputFormat = Literal["auto", "images", "packed"]
PACKED_COLUMNS = ("path", "split", "label", "content", "length")
SUCCESS_MARKER = "_SUCCESS"
METRICS_FILE = "metrics.json"
ATTEMPT_SUFFIX = ".tmp-"


class ImageListing(NamedTuple):
    """An image folder listed once: its binaryFile frame and every listed file's URI."""

    frame: DataFrame
    uris: list[str]


class InputSource(NamedTuple):
    """The input opened for featurisation (``uris``: the listing, images only)."""

    frame: DataFrame
    input_format: str
    uris: list[str] | None


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


def read_text(spark: SparkSession, uri: str) -> str | None:
    """A small UTF-8 text file's content, or None when it does not exist."""
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        reader = spark._jvm.java.io.InputStreamReader(stream, "UTF-8")
        return str(spark._jvm.org.apache.commons.io.IOUtils.toString(reader))
    finally:
        stream.close()


def move_files(
    spark: SparkSession, source_dir: str, dest_dir: str, *, suffix: str, prefix: str
) -> int:
    """Move the ``*suffix`` files of ``source_dir`` into ``dest_dir`` as
    ``<prefix>-NNNNN<suffix>``, one file at a time (each appears complete: a rename on
    local disks and HDFS, a copy then delete on S3). Returns the number moved."""
    fs, source = _fs_and_path(spark, source_dir)
    _, dest = _fs_and_path(spark, dest_dir)
    fs.mkdirs(dest)
    names = sorted(
        str(s.getPath().getName())
        for s in fs.listStatus(source)
        if s.isFile() and s.getPath().getName().endswith(suffix)
    )
    hadoop_path = spark._jvm.org.apache.hadoop.fs.Path
    for i, name in enumerate(names):
        target = hadoop_path(dest, f"{prefix}-{i:05d}{suffix}")
        if not fs.rename(hadoop_path(source, name), target):
            raise OSError(f"could not move {source_dir}/{name} to {target}")
    return len(names)


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


def list_images(spark: SparkSession, input_uri: str) -> ImageListing:
    """The one listing of the image files under ``input_uri`` (recursive, jpg/jpeg/png).

    ``frame`` has columns ``uri`` (string), ``content`` (binary), ``length`` (long) and
    keeps the file index of this listing, so scanning it lists nothing again. ``uris``
    are every listed file, zero-byte ones included (binaryFile drops those silently when
    it scans; the caller counts them from this listing). Nothing is read or stat-ed per
    file here: binaryFile's reader stats each file when a scan runs (one HEAD per file on
    S3), so the job scans ``frame`` once, to featurise, and counts from ``uris``.
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
    listed = sorted(_normalise_uri(u) for u in str(listing).split("\n") if u)
    if not listed:
        raise NoInputFilesError(f"no .jpg/.jpeg/.png files under {input_uri}")
    return ImageListing(raw, listed)


_GLOB_CHARS = re.compile(r"([{}\[\]*?\\])")


def read_image_files(spark: SparkSession, uris: list[str]) -> DataFrame:
    """Only the given files (raw ``file:/...`` or ``s3://...`` URIs from
    :func:`list_images`), as ``uri, content, length``: mini mode reads its sample, not
    the dataset. Glob characters in names are escaped, so each URI means one file."""
    if not uris:
        raise ValueError("no files to read")
    return (
        spark.read.format("binaryFile")
        .load([_GLOB_CHARS.sub(r"\\\1", u) for u in uris])
        .select(F.col("path").alias("uri"), "content", "length")
    )


def read_packed(spark: SparkSession, input_uri: str) -> DataFrame:
    """Packed parquet shards (see :mod:`spark_jobs.packing`) as ``uri, content, length``."""
    df = spark.read.parquet(input_uri)
    missing = [c for c in PACKED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{input_uri} does not look like packed images: missing columns {missing}")
    return df.select(F.col("path").alias("uri"), "content", "length")


def read_input(spark: SparkSession, input_uri: str, input_format: InputFormat) -> InputSource:
    """Open either form: the frame to featurise, the format used and (images) the listing."""
    fmt = detect_format(spark, input_uri) if input_format == "auto" else input_format
    if fmt == "packed":
        return InputSource(read_packed(spark, input_uri), "packed", None)
    listing = list_images(spark, input_uri)
    return InputSource(listing.frame, "images", listing.uris)


class NoInputFilesError(RuntimeError):
    """The input holds no image files at all."""


def write_parquet(df: DataFrame, uri: str) -> None:
    """Write ``df`` as parquet at ``uri`` (replacing it)."""
    df.write.mode("overwrite").parquet(uri)


# --- publishing a run: write aside, replace the previous run only after success ---------


def attempt_uri(run_uri: str, attempt: str) -> str:
    """The folder an attempt writes to: ``<run>.tmp-<attempt>``, a sibling of the run.

    Readers of ``<run>/`` (``download_results``, the local DAG) never look there; a
    failed attempt deletes it and leaves ``<run>/`` as it was.
    """
    if not attempt or "/" in attempt:
        raise ValueError(f"attempt must be a plain name, got {attempt!r}")
    return f"{run_uri}{ATTEMPT_SUFFIX}{attempt}"


def publish_run(
    spark: SparkSession,
    attempt: str,
    run_uri: str,
    metrics: dict[str, Any],
    *,
    summary_file: str = METRICS_FILE,
) -> None:
    """Make the finished attempt folder the run: ``metrics`` into it (as ``summary_file``,
    ``metrics.json`` by default; the pack step's is ``_pack.json``), the previous
    run's ``_SUCCESS`` removed, the previous run deleted, the attempt renamed to
    ``<run>/``, and ``_SUCCESS`` written there last.

    Everything that can fail with the job (featurisation, PCA, writes) happened before,
    in the attempt folder: a failed rerun never touches the previous run. On HDFS and
    local disks the rename is one atomic call. On S3 (EMRFS) a rename is a copy of each
    object then a delete: between the delete of the old run and the end of the copy,
    ``<run>/`` exists without ``_SUCCESS``, so readers that honour the marker see "not
    published" rather than a mix; if the copy itself fails, the complete attempt folder
    is left in place (``<run>.tmp-<attempt>/``, with ``metrics.json``) to copy by hand.
    """
    write_text(
        spark,
        f"{attempt}/{summary_file}",
        json.dumps(metrics, indent=2, ensure_ascii=False) + "\n",
    )
    fs, final = _fs_and_path(spark, run_uri)
    _, source = _fs_and_path(spark, attempt)
    marker = spark._jvm.org.apache.hadoop.fs.Path(f"{run_uri}/{SUCCESS_MARKER}")
    if fs.exists(marker):
        fs.delete(marker, False)  # first: the old run stops being "published"
    if fs.exists(final):
        fs.delete(final, True)  # rename() into an existing folder would nest the attempt
    if not fs.rename(source, final):
        raise OSError(f"could not rename {attempt} to {run_uri}")
    write_text(spark, f"{run_uri}/{SUCCESS_MARKER}", "")


def stale_attempts(spark: SparkSession, run_uri: str) -> list[str]:
    """Attempt folders of ``run_uri`` left by attempts that died without cleaning up."""
    fs, final = _fs_and_path(spark, run_uri)
    parent = final.getParent()
    prefix = final.getName() + ATTEMPT_SUFFIX
    if not fs.exists(parent):
        return []
    return sorted(
        str(s.getPath())
        for s in fs.listStatus(parent)
        if s.isDirectory() and s.getPath().getName().startswith(prefix)
    )
