"""The I/O layer: URIs, input detection, zero-byte files binaryFile would drop, run files."""

from __future__ import annotations

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


def _rel(uri: str) -> str:
    return "/".join(uri.split("/")[-3:])


def test_the_listing_keeps_zero_byte_files_and_skips_other_files(spark, bad_dataset):
    listing = job_io.list_images(spark, job_io.qualify(str(bad_dataset)))
    rels = {_rel(u) for u in listing.uris}
    assert len(listing.uris) == 24 + len(EXTRA_VALID) + len(EXPECTED_BAD)
    assert set(EXPECTED_BAD) | EXTRA_VALID <= rels
    assert not any(rel.endswith(("readme.txt", ".DS_Store")) for rel in rels)
    # The scan itself drops the zero-byte file: the job counts it from the listing.
    scanned = {_rel(r.uri) for r in listing.frame.select("uri").collect()}
    assert rels - scanned == {"Test/Banana/empty.jpg"}


def test_read_image_files_reads_exactly_the_given_files(spark, bad_dataset, tmp_path):
    listing = job_io.list_images(spark, job_io.qualify(str(bad_dataset)))
    odd = tmp_path / "Training" / "Kiwi"
    odd.mkdir(parents=True)
    # Glob characters in a name must not turn one file into a pattern.
    payload = (bad_dataset / "Training/Kiwi/0_100.jpg").read_bytes()
    (odd / "a[1]{x}*.jpg").write_bytes(payload)
    (odd / "a1x.jpg").write_bytes(b"must not be read")
    odd_listing = job_io.list_images(spark, job_io.qualify(str(tmp_path))).uris
    chosen = [u for u in listing.uris if "pomme rouge" in u]
    chosen += [u for u in odd_listing if u.endswith("a[1]{x}*.jpg")]
    assert len(chosen) == 2
    rows = job_io.read_image_files(spark, chosen).collect()
    got = {_rel(r.uri): bytes(r.content) for r in rows}
    original = (bad_dataset / "Training/Apple Red 1/pomme rouge é.jpg").read_bytes()
    assert got == {"Training/Apple Red 1/pomme rouge é.jpg": original,
                   "Training/Kiwi/a[1]{x}*.jpg": payload}  # fmt: skip


def test_read_packed_rejects_other_parquet(spark, tmp_path):
    spark.createDataFrame([(1,)], "x int").write.parquet(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="missing columns"):
        job_io.read_packed(spark, str(tmp_path / "other"))


def test_run_files_are_written_and_deleted_through_hadoop_fs(spark, tmp_path):
    run = job_io.qualify(str(tmp_path / "run"))
    job_io.write_text(spark, f"{run}/notes.txt", "pomme é")
    assert (tmp_path / "run" / "notes.txt").read_text(encoding="utf-8") == "pomme é"
    assert job_io.exists(spark, run)
    assert job_io.delete(spark, run)
    assert not (tmp_path / "run").exists()
    assert not job_io.delete(spark, run)


def test_publishing_replaces_the_previous_run_only_at_the_end(spark, tmp_path):
    base = job_io.qualify(str(tmp_path))
    old = tmp_path / "r1"
    (old / "features").mkdir(parents=True)
    (old / "features" / "part-old.parquet").write_text("old")
    (old / "_SUCCESS").write_text("")
    attempt = job_io.attempt_uri(f"{base}/r1", "app-1-abcd")
    assert attempt == f"{base}/r1.tmp-app-1-abcd"
    job_io.write_text(spark, f"{attempt}/pca/part-new.parquet", "new")
    # Until publish_run, readers of r1/ see the old run, whole and marked.
    assert (old / "_SUCCESS").exists()
    assert (old / "features" / "part-old.parquet").exists()
    assert job_io.stale_attempts(spark, f"{base}/r1") == [attempt.replace("file://", "file:")]
    job_io.publish_run(spark, attempt, f"{base}/r1", {"k": 3, "label": "pomme é"})
    published = [p for p in old.rglob("*") if p.is_file() and p.suffix != ".crc"]
    assert sorted(p.relative_to(old).as_posix() for p in published) == [
        "_SUCCESS", "metrics.json", "pca/part-new.parquet",
    ]  # fmt: skip
    assert (old / "metrics.json").read_text(encoding="utf-8").count("pomme é") == 1
    assert not (tmp_path / "r1.tmp-app-1-abcd").exists()
    assert job_io.stale_attempts(spark, f"{base}/r1") == []
    with pytest.raises(ValueError, match="plain name"):
        job_io.attempt_uri(f"{base}/r1", "a/b")
