"""The I/O layer: URIs, input detection, zero-byte files binaryFile would drop, run files."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_jobs import io as job_io
from tests.spark_jobs.conftest import EXPECTED_BAD, EXTRA_VALID


def test_qualify_makes_local_paths_absolute_and_keeps_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert job_io.qualify("data/in put") == f"file://{tmp_path}/data/in put"
    assert job_io.qualify("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert job_io.qualify("file:///tmp/x") == "file:///tmp/x"


def test_detect_format(spark, bad_dataset, packed_bad_dataset, tmp_path):
    assert job_io.detect_format(spark, str(bad_dataset)) == "images"
    assert job_io.detect_format(spark, str(packed_bad_dataset)) == "packed"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        job_io.detect_format(spark, str(tmp_path / "missing"))


def test_read_images_keeps_zero_byte_files_and_skips_other_files(spark, bad_dataset):
    rows = job_io.read_images(spark, job_io.qualify(str(bad_dataset))).collect()
    by_rel = {"/".join(r.uri.split("/")[-3:]): r for r in rows}
    assert len(rows) == 24 + len(EXTRA_VALID) + len(EXPECTED_BAD)
    assert set(EXPECTED_BAD) | EXTRA_VALID <= set(by_rel)
    empty = by_rel["Test/Banana/empty.jpg"]
    assert (empty.length, bytes(empty.content)) == (0, b"")
    assert not any(rel.endswith(("readme.txt", ".DS_Store")) for rel in by_rel)
    original = (bad_dataset / "Training/Apple Red 1/pomme rouge é.jpg").read_bytes()
    assert bytes(by_rel["Training/Apple Red 1/pomme rouge é.jpg"].content) == original


def test_read_packed_rejects_other_parquet(spark, tmp_path):
    spark.createDataFrame([(1,)], "x int").write.parquet(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="missing columns"):
        job_io.read_packed(spark, str(tmp_path / "other"))


def test_run_files_are_written_and_deleted_through_hadoop_fs(spark, tmp_path):
    run = job_io.qualify(str(tmp_path / "run"))
    job_io.write_metrics_and_mark_success(spark, run, {"k": 3, "label": "pomme é"})
    assert (tmp_path / "run" / "metrics.json").read_text(encoding="utf-8").count("pomme é") == 1
    assert Path(tmp_path / "run" / "_SUCCESS").read_bytes() == b""
    assert job_io.exists(spark, run)
    assert job_io.delete(spark, run)
    assert not (tmp_path / "run").exists()
    assert not job_io.delete(spark, run)
