"""Packing small image files into parquet shards (pyarrow only, no Spark)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from spark_jobs.packing import pack_images


def test_pack_carries_every_image_file_with_its_labels(bad_dataset, tmp_path):
    summary = pack_images(bad_dataset, tmp_path / "packed")
    table = pq.read_table(tmp_path / "packed")
    rows = {r["path"]: r for r in table.to_pylist()}
    assert summary.images == len(rows) == 24 + 5 + 3  # generated + extra valid + bad
    assert summary.empty_files == 1
    assert summary.skipped_files == 1  # readme.txt; .DS_Store is hidden
    assert rows["Test/Banana/empty.jpg"]["length"] == 0
    assert rows["Training/Apple Red 1/pomme rouge é.jpg"]["label"] == "Apple Red 1"
    assert rows["Training/Apple Red 1/pomme rouge é.jpg"]["split"] == "Training"
    original = (bad_dataset / "Training/Kiwi/truncated.jpg").read_bytes()
    assert rows["Training/Kiwi/truncated.jpg"]["content"] == original
    assert summary.total_bytes == sum(r["length"] for r in rows.values())


def test_pack_is_deterministic_and_rolls_shards(bad_dataset, tmp_path):
    first = pack_images(bad_dataset, tmp_path / "a", target_shard_bytes=20_000)
    second = pack_images(bad_dataset, tmp_path / "b", target_shard_bytes=20_000)
    assert len(first.shards) > 1
    assert [p.name for p in first.shards] == [
        f"part-{i:05d}.parquet" for i in range(len(first.shards))
    ]
    for a, b in zip(first.shards, second.shards, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_repack_replaces_old_shards(bad_dataset, tmp_path):
    dest = tmp_path / "packed"
    pack_images(bad_dataset, dest, target_shard_bytes=10_000)
    summary = pack_images(bad_dataset, dest)
    assert sorted(dest.glob("part-*.parquet")) == summary.shards == [dest / "part-00000.parquet"]


def test_pack_rejects_missing_or_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError):
        pack_images(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty" / "Training" / "Kiwi").mkdir(parents=True)
    (tmp_path / "empty" / "Training" / "Kiwi" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no \.jpg"):
        pack_images(tmp_path / "empty", tmp_path / "out")
