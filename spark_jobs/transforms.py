"""Pure ``DataFrame -> DataFrame`` steps of the job (no I/O, no model).

Input frames have a ``path`` column holding a file's URI or its path relative to the
dataset root; the dataset layout is Fruits-360's ``<split>/<Label>/<file>``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png")
# Hadoop glob for binaryFile's pathGlobFilter, case-insensitive (.jpg, .JPG, .Jpeg, ...).
IMAGE_GLOB = "*.{[jJ][pP][gG],[jJ][pP][eE][gG],[pP][nN][gG]}"


def _parts(path: Column) -> Column:
    return F.split(path, "/")


def relative_path(path: Column) -> Column:
    """``<split>/<Label>/<file>``: the last three components of a path or URI.

    The same for a local folder, an ``s3://`` prefix and a packed shard, so outputs of
    the same images read in different ways can be joined on it.
    """
    parts = _parts(path)
    return F.concat_ws(
        "/", F.element_at(parts, -3), F.element_at(parts, -2), F.element_at(parts, -1)
    )


def with_labels(df: DataFrame, path_col: str = "path") -> DataFrame:
    """Add ``label`` (the parent folder) and ``split`` (the grandparent folder)."""
    parts = _parts(F.col(path_col))
    return df.withColumn("label", F.element_at(parts, -2)).withColumn(
        "split", F.element_at(parts, -3)
    )


def image_files_only(df: DataFrame, path_col: str = "path") -> DataFrame:
    """Keep rows whose path ends in an image extension, in any case."""
    pattern = r"\.(" + "|".join(IMAGE_EXTENSIONS) + r")$"
    return df.filter(F.lower(F.col(path_col)).rlike(pattern))


def deterministic_sample(
    df: DataFrame,
    *,
    seed: int,
    per_class: int | None = None,
    max_images: int | None = None,
) -> DataFrame:
    """A seeded sample that does not depend on partitioning or input format.

    Rows are ranked by ``xxhash64(seed, path)`` (ties broken by ``path``); at most
    ``per_class`` rows per ``label`` are kept, then at most ``max_images`` rows overall.
    The same seed and the same paths always give the same rows.
    """
    key = F.xxhash64(F.lit(seed), F.col("path"))
    out = df.withColumn("_sample_key", key)
    if per_class is not None:
        window = Window.partitionBy("label").orderBy("_sample_key", "path")
        out = out.withColumn("_rank", F.row_number().over(window)).filter(
            F.col("_rank") <= per_class
        )
        out = out.drop("_rank")
    if max_images is not None:
        out = out.orderBy("_sample_key", "path").limit(max_images)
    return out.drop("_sample_key")
