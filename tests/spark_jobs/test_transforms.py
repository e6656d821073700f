"""Pure DataFrame transforms: labels and splits from paths, image filter, mini sample."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from spark_jobs import transforms


@pytest.fixture(scope="module")
def paths_df(spark):
    rows = [
        ("file:/data/fruits-360/Training/Apple Red 1/0_100.jpg",),
        ("s3://bucket/fruits/dataset/Test/Kiwi/r_12_100.JPG",),
        ("Training/Banana/pomme rouge é.jpeg",),
        ("file:/data/fruits-360/Test/Pear/notes.txt",),
        ("file:/data/fruits-360/Test/Pear/a.png",),
    ]
    return spark.createDataFrame(rows, "path string")


def test_labels_and_splits_from_paths(paths_df):
    rows = transforms.with_labels(paths_df).collect()
    got = {r.path: (r.split, r.label) for r in rows}
    assert got["file:/data/fruits-360/Training/Apple Red 1/0_100.jpg"] == (
        "Training",
        "Apple Red 1",
    )
    assert got["s3://bucket/fruits/dataset/Test/Kiwi/r_12_100.JPG"] == ("Test", "Kiwi")
    assert got["Training/Banana/pomme rouge é.jpeg"] == ("Training", "Banana")


def test_relative_path_is_the_same_for_every_location(paths_df):
    rel = paths_df.select(transforms.relative_path(F.col("path")).alias("rel"))
    assert [r.rel for r in rel.collect()] == [
        "Training/Apple Red 1/0_100.jpg",
        "Test/Kiwi/r_12_100.JPG",
        "Training/Banana/pomme rouge é.jpeg",
        "Test/Pear/notes.txt",
        "Test/Pear/a.png",
    ]


def test_image_filter_is_case_insensitive_and_drops_other_files(paths_df):
    kept = {r.path for r in transforms.image_files_only(paths_df).collect()}
    assert "file:/data/fruits-360/Test/Pear/notes.txt" not in kept
    assert len(kept) == 4


@pytest.fixture(scope="module")
def labelled(spark):
    rows = [
        (f"{split}/L{c}/{i}.jpg", f"L{c}")
        for c in range(5)
        for i in range(20)
        for split in ("Training", "Test")
    ]
    return spark.createDataFrame(rows, "path string, label string")


def _sample(df, **kwargs) -> list[str]:
    return sorted(r.path for r in transforms.deterministic_sample(df, **kwargs).collect())


def test_sample_is_deterministic_and_independent_of_partitioning(labelled):
    first = _sample(labelled, seed=7, per_class=3, max_images=10)
    again = _sample(labelled.repartition(7).orderBy(F.rand(1)), seed=7, per_class=3, max_images=10)
    assert first == again
    assert len(first) == 10
    assert first != _sample(labelled, seed=8, per_class=3, max_images=10)


def test_sample_respects_per_class_cap(labelled):
    chosen = transforms.deterministic_sample(labelled, seed=1, per_class=4)
    counts = {r.label: r["count"] for r in chosen.groupBy("label").count().collect()}
    assert counts == {f"L{c}": 4 for c in range(5)}


def test_sample_max_images_only(labelled):
    assert len(_sample(labelled, seed=3, max_images=17)) == 17
    # More than available: everything.
    assert len(_sample(labelled, seed=3, max_images=10_000)) == labelled.count()
