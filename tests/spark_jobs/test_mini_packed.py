"""Mini mode on packed shards reads only the row groups that hold a chosen image."""

from __future__ import annotations

import argparse

from spark_jobs import packing, transforms
from spark_jobs.selection import select_input


def _args(shards, max_images):
    return argparse.Namespace(
        mode="mini",
        max_images=max_images,
        per_class=None,
        seed=7,
        input_format="packed",
        input=str(shards),
    )


def test_mini_sample_filter_is_pushed_into_the_parquet_scan(
    spark, sample_dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr(packing, "_ROWS_PER_GROUP", 4)  # many row groups from a few images
    shards = tmp_path / "packed"
    packing.pack_images(sample_dataset, shards)
    selected = select_input(_args(shards, 12), spark, str(shards))
    files, fmt = selected.files, selected.input_format
    assert fmt == "packed"

    plan = files._jdf.queryExecution().executedPlan().toString()
    scan = next(line for line in plan.splitlines() if "PushedFilters" in line)
    # On the shards' own column: parquet skips row groups whose path range holds none.
    assert "In(path, [" in scan, scan
    # 12 values > Spark's default threshold of 10, above which only a min..max range of
    # the list (all of a hash-random sample) would reach parquet.
    assert int(spark.conf.get("spark.sql.parquet.pushdown.inFilterThreshold")) >= 12

    # The same images the sample of the listing gives (nothing but the reading changed).
    expected = transforms.deterministic_sample(
        transforms.with_labels(spark.read.parquet(str(shards)).select("path")),
        seed=7,
        max_images=12,
    )
    assert {r["path"] for r in files.select("path").collect()} == {
        r["path"] for r in expected.collect()
    }
