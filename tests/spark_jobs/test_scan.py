"""How the job reads its input: no shuffle of raw bytes, every slot busy, and mini mode
reading only its sample (bytes counted by Hadoop's own filesystem statistics)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from spark_jobs import cli, selection
from spark_jobs import io as job_io
from tests.spark_jobs.conftest import TEST_IMAGE_SIZE

# Each test plans (and partly runs) the job on Spark: 10-80 s each on 2 busy cores.
pytestmark = pytest.mark.slow


class _Stop(Exception):
    """Raised where the job would featurise: these tests only look at the plan."""


def job_args(input_dir: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--input", str(input_dir), "--output", str(output), "--run-id", "scan",
        "--weights", "none", "--image-size", str(TEST_IMAGE_SIZE), *extra,
    ]  # fmt: skip


def featurisation_frame(monkeypatch, argv: list[str]):
    """The frame the job's one featurising write would run, without running it."""
    captured = {}

    def capture(df, uri):
        captured["df"], captured["uri"] = df, uri
        raise _Stop

    monkeypatch.setattr(job_io, "write_parquet", capture)
    with pytest.raises(_Stop):
        cli.run(cli.parse_args(argv))
    assert captured["uri"].endswith(f"/{cli.STAGED_DIR}")
    return captured["df"]


def local_bytes_read(spark) -> int:
    """Bytes read so far through Hadoop's local filesystem (executors share this JVM)."""
    stats = spark._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    return sum(int(s.getBytesRead()) for s in stats if s.getScheme() == "file")


@pytest.mark.parametrize("packed", [False, True], ids=["images", "packed"])
def test_featurisation_reads_the_scan_without_a_shuffle(
    spark, monkeypatch, bad_dataset, packed_bad_dataset, tmp_path, packed
):
    source = packed_bad_dataset if packed else bad_dataset
    df = featurisation_frame(monkeypatch, job_args(source, tmp_path, "--task-slots", "6"))
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "Exchange" not in plan  # no raw JPEG bytes through a shuffle
    assert ("FileScan parquet" if packed else "FileScan binaryFile") in plan
    if not packed:
        # 37 small files over 6 slots: the scan is split so that every slot has a task.
        assert df.rdd.getNumPartitions() >= 6
    assert not list(tmp_path.iterdir())  # the failed attempt left nothing behind


def test_mini_mode_reads_only_the_sampled_files(spark, sample_dataset, tmp_path):
    args = cli.parse_args(job_args(sample_dataset, tmp_path, "--mode", "mini", "--max-images", "3"))
    input_uri = job_io.qualify(str(sample_dataset))
    selected = selection.select_input(args, spark, input_uri)
    files, fmt, expected = selected.files, selected.input_format, selected.expected
    assert fmt == "images"
    assert len(expected) == 3
    # The run knows what it sampled from: 3 of the dataset's 48 images.
    assert selected.dataset_images == sum(1 for _ in sample_dataset.rglob("*.jpg")) == 48
    total = sum(p.stat().st_size for p in sample_dataset.rglob("*.jpg"))
    chosen = sum((sample_dataset / rel).stat().st_size for rel in expected)
    assert chosen < total / 8  # 3 of 48 images

    before = local_bytes_read(spark)
    got = files.agg(F.count("*"), F.sum(F.length("content"))).first()
    read = local_bytes_read(spark) - before
    assert tuple(got) == (3, chosen)
    assert chosen <= read < 2 * chosen

    # What the job did before: a semi-join of the sample on the full scan reads it all.
    listing = job_io.list_images(spark, input_uri).frame
    with_path = listing.withColumn("path", F.concat_ws("/", *[
        F.element_at(F.split("uri", "/"), i) for i in (-3, -2, -1)
    ]))  # fmt: skip
    chosen_df = spark.createDataFrame([(p,) for p in expected], "path string")
    before = local_bytes_read(spark)
    semi = with_path.join(F.broadcast(chosen_df), "path", "left_semi")
    assert semi.agg(F.sum(F.length("content"))).first()[0] == chosen
    assert local_bytes_read(spark) - before >= total


def test_packed_mini_mode_counts_the_whole_dataset(spark, packed_bad_dataset, tmp_path):
    """A sample of packed shards still knows how many images the shards hold."""
    input_uri = job_io.qualify(str(packed_bad_dataset))
    mini = cli.parse_args(
        job_args(packed_bad_dataset, tmp_path, "--mode", "mini", "--max-images", "3")
    )
    full = cli.parse_args(job_args(packed_bad_dataset, tmp_path, "--mode", "full"))
    sampled = selection.select_input(mini, spark, input_uri)
    everything = selection.select_input(full, spark, input_uri)
    assert sampled.files.count() == 3
    assert everything.dataset_images is None  # not sampled: the run counts what it reads
    assert sampled.dataset_images == everything.files.count() > 3
