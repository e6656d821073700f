"""Packing an image folder with Spark (the cluster's pack step for S3 datasets)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from spark_jobs import pack_step
from spark_jobs.io import NoInputFilesError
from spark_jobs.packing import SCHEMA, pack_images


def _rows(folder) -> dict[str, tuple]:
    table = pq.read_table(folder)
    assert table.schema.names == SCHEMA.names
    return {
        r["path"]: (r["split"], r["label"], r["content"], r["length"]) for r in table.to_pylist()
    }


def test_spark_pack_holds_what_the_local_packer_holds(spark, bad_dataset, tmp_path):
    out = tmp_path / "s3-packed"
    summary = pack_step.pack(spark, str(bad_dataset), str(out), shard_bytes=20_000)
    pack_images(bad_dataset, tmp_path / "local")
    expected = _rows(tmp_path / "local")
    # Same rows, zero-byte file included (binaryFile's scan drops it; the listing has it).
    assert _rows(out) == expected
    assert expected["Test/Banana/empty.jpg"][3] == 0
    assert summary["images"] == len(expected)
    assert summary["empty_files"] == 1
    assert summary["shards"] == len(list(out.glob("*.parquet"))) > 1  # ~20 KB shards
    assert (out / "_SUCCESS").exists()
    assert json.loads((out / pack_step.SUMMARY_FILE).read_text())["images"] == len(expected)
    assert not list(tmp_path.glob("s3-packed.tmp-*"))


def test_a_failed_pack_leaves_the_previous_shards_and_no_attempt(spark, bad_dataset, tmp_path):
    out = tmp_path / "packed"
    pack_step.pack(spark, str(bad_dataset), str(out), shard_bytes=10**9)
    before = sorted(p.name for p in out.iterdir())
    (tmp_path / "no-images" / "Training" / "Kiwi").mkdir(parents=True)
    (tmp_path / "no-images" / "Training" / "Kiwi" / "notes.txt").write_text("x")
    with pytest.raises(NoInputFilesError):
        pack_step.pack(spark, str(tmp_path / "no-images"), str(out), shard_bytes=10**9)
    assert sorted(p.name for p in out.iterdir()) == before
    assert not list(tmp_path.glob("packed.tmp-*"))


@pytest.mark.parametrize("case", ["missing", "no images"])
def test_main_exits_2_without_images_and_writes_nothing(case, spark, tmp_path, capsys):
    source = tmp_path / "source"
    if case == "no images":
        (source / "Training" / "Kiwi").mkdir(parents=True)
        (source / "Training" / "Kiwi" / "notes.txt").write_text("x")
    argv = ["--input", str(source), "--output", str(tmp_path / "out")]
    assert pack_step.main(argv) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
