"""Which images a run reads: the whole dataset (full mode) or a seeded sample of it (mini).

:func:`select_input` lists the input once and, in mini mode, draws the sample from the
listing so that only the chosen images are read. It also says how many images the whole
dataset holds, so that a sampled run says "200 of 10,664" and never passes for a full one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any


class NoValidImagesError(RuntimeError):
    """Nothing could be featurised: nothing is published."""


@dataclass(frozen=True)
class SelectedInput:
    """The images a run reads."""

    files: Any  # DataFrame: path, split, label, content (+ uri)
    input_format: str  # "images" or "packed"
    expected: set[str] | None  # relative paths listed (image folders only), else None
    dataset_images: int | None  # image files in the whole dataset; None: not sampled


def select_input(args: argparse.Namespace, spark: Any, input_uri: str) -> SelectedInput:
    """The run's images under ``input_uri``: all of them, or the mini-mode sample."""
    from pyspark.sql import functions as F  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    from spark_jobs import io, transforms  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    source = io.read_input(spark, input_uri, args.input_format)

    def labelled(frame: Any) -> Any:
        return transforms.with_labels(
            frame.withColumn("path", transforms.relative_path(F.col("uri")))
        ).transform(transforms.image_files_only)

    sampling = args.mode == "mini" and (args.max_images or args.per_class)
    if source.input_format == "images":
        assert source.uris is not None
        # The listing as a small frame of names: the sample is drawn from it and only the
        # chosen files are read (a semi-join on the scan is not pushed into binaryFile:
        # every file would be read to keep 20).
        listing = labelled(spark.createDataFrame([(u,) for u in source.uris], "uri string"))
        dataset_images = listing.count() if sampling else None
        if sampling:
            listing = transforms.deterministic_sample(
                listing, seed=args.seed, per_class=args.per_class, max_images=args.max_images
            )
        chosen = {r["path"]: r["uri"] for r in listing.select("path", "uri").collect()}
        if not chosen:
            raise NoValidImagesError(f"no image files under {args.input}")
        frame = io.read_image_files(spark, sorted(chosen.values())) if sampling else source.frame
        return SelectedInput(labelled(frame), "images", set(chosen), dataset_images)
    files = labelled(source.frame)
    dataset_images = None
    if sampling:
        # The sample is drawn from the shards' `path` column alone (parquet reads no image
        # bytes for it), then only row groups holding a chosen image are read: the filter
        # is on the shards' own column (`uri`, an alias of it), which Spark pushes into the
        # parquet scan; one on the derived `path` would not be, and every shard would be
        # read. An IN list longer than inFilterThreshold (default 10) is pushed only as a
        # min..max range, which a hash-random sample spans: raise it to the sample's size.
        names = files.select("uri", "path", "label")
        dataset_images = names.count()
        chosen_rows = transforms.deterministic_sample(
            names,
            seed=args.seed,
            per_class=args.per_class,
            max_images=args.max_images,
        ).collect()
        chosen_uris = sorted({r["uri"] for r in chosen_rows})
        threshold = "spark.sql.parquet.pushdown.inFilterThreshold"
        spark.conf.set(threshold, str(max(len(chosen_uris), 10)))
        files = labelled(source.frame.filter(F.col("uri").isin(chosen_uris)))
    return SelectedInput(files, "packed", None, dataset_images)
