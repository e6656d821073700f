"""The incremental feature cache: features of earlier runs, reused by content.

``--feature-cache URI`` (a local folder or ``s3://``) holds parquet files of
``content_sha256, features, model_key``: the SHA-256 of an image file's bytes, the
features computed from them, and the **model key** of what computed them. A run hashes
every input image on the executors (Spark's own ``sha2``, in the JVM: the bytes are read
anyway), featurises only the images whose hash is not in the cache, takes the others'
features from it, fits the PCA on the full set as always, and appends the features it
computed. The results equal a full recompute: a cached feature is the float32 vector the
same model computed from the same bytes (LiteRT and ONNX Runtime give a row the same bits
whatever batch it is in), read back from parquet unchanged.

Layout (one folder per model key, so another model's features are never even read)::

    <cache>/model=<model_key>/_model.json                what the key stands for
    <cache>/model=<model_key>/part-<attempt>-00000.parquet

The **model key** (:func:`model_identity`) is a hash of everything that decides a feature:
the runtime, the digest of the exact model that runs (the converted model's bytes for
litert/onnx, the weights' content for keras), the image size, the feature width, the
decode/preprocessing recipe (:data:`CACHE_FORMAT`) and the versions of the runtime
package and of Pillow (decoding). Other weights, another image size, another runtime or
an upgraded runtime get another key, hence a folder of their own: zero reuse.
``--weights none`` is MobileNetV2 initialised with a fixed seed (``RANDOM_SEED``), the
same network on every run: it is keyed by its content like any weights, and reused.

Trust: the reader keeps only rows whose ``model_key`` column is this key, whose hash is 64
hex digits and whose features are ``FEATURE_DIM`` non-null floats (others are counted as
``rejected`` and recomputed); an unreadable parquet file is skipped (``ignoreCorruptFiles``)
and its images recomputed; a ``_model.json`` that describes another model refuses the run
(:class:`FeatureCacheError`, exit 2). Writes: a run's new entries are written inside its
own attempt folder first and only then moved into the cache, one complete file at a time,
under attempt-unique names; a failed run adds nothing or only complete files. Bad
(undecodable) images are never cached. Concurrent runs may both add an entry for the same
image: the reader keeps one (they are equal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import FEATURE_DIM, io

log = logging.getLogger("spark_jobs")

CACHE_FORMAT = "fruits-feature-cache/1"
"""Bumped when decoding or preprocessing changes the features: old entries are unreachable."""
CACHE_SCHEMA = "content_sha256 string, features array<float>, model_key string"
IDENTITY_FILE = "_model.json"
HASH_COLUMN = "content_sha256"
REUSED_COLUMN = "reused"
ROWS_PER_FILE = 20_000
"""~100 MB of 1280-float features per cache file."""


class FeatureCacheError(RuntimeError):
    """The cache cannot be trusted for this run (or changed under it): nothing published."""


def model_identity(
    *, runtime: str, model_digest: str, image_size: int, versions: dict[str, str]
) -> dict[str, Any]:
    """Everything that decides a feature of this run, as the cache's ``_model.json``."""
    return {
        "format": CACHE_FORMAT,
        "runtime": runtime,
        "model_digest": model_digest,
        "image_size": image_size,
        "feature_dim": FEATURE_DIM,
        # What decodes (Pillow) and what runs the model: an upgrade may change the bits.
        "versions": dict(sorted(versions.items())),
    }


def model_key(identity: dict[str, Any]) -> str:
    """The hash naming the folder of ``identity``'s features (24 hex digits)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class FeatureCache:
    """One model's part of the cache at ``uri``."""

    uri: str
    identity: dict[str, Any]

    @property
    def key(self) -> str:
        return model_key(self.identity)

    @property
    def folder(self) -> str:
        return f"{self.uri.rstrip('/')}/model={self.key}"

    def check_identity(self, spark: SparkSession) -> None:
        """Refuse a folder whose ``_model.json`` names another model (a foreign copy)."""

        text = io.read_text(spark, f"{self.folder}/{IDENTITY_FILE}")
        if text is None:
            return
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise FeatureCacheError(
                f"{self.folder}/{IDENTITY_FILE} is not JSON ({exc}): the cache folder is "
                "damaged; delete it (its features are recomputed) or run without --feature-cache"
            ) from exc
        if found != self.identity:
            raise FeatureCacheError(
                f"{self.folder} holds features of another model ({IDENTITY_FILE}: {found}; "
                f"this run: {self.identity}): it was copied or edited by hand; delete it "
                "or run without --feature-cache"
            )

    def entries(self, spark: SparkSession) -> tuple[DataFrame, int]:
        """(the trusted entries, one row per hash; the number of rows rejected)."""

        if not io.exists(spark, self.folder):
            return spark.createDataFrame([], "content_sha256 string, features array<float>"), 0
        raw = (
            spark.read.schema(CACHE_SCHEMA)
            .option("ignoreCorruptFiles", "true")
            .option("pathGlobFilter", "*.parquet")
            .parquet(self.folder)
        )
        valid = (
            (F.col("model_key") == F.lit(self.key))
            & F.col(HASH_COLUMN).rlike("^[0-9a-f]{64}$")
            & (F.size("features") == FEATURE_DIM)
            & ~F.exists("features", lambda x: x.isNull())
        )
        flagged = raw.withColumn("_valid", F.coalesce(valid, F.lit(False)))
        total, trusted = flagged.agg(
            F.count(F.lit(1)), F.coalesce(F.sum(F.col("_valid").cast("long")), F.lit(0))
        ).first()
        if total > trusted:
            log.warning(
                "feature cache %s: %d of %d rows are not this model's or malformed; "
                "their images are featurised again",
                self.folder,
                total - trusted,
                total,
            )
        trusted_rows = flagged.filter("_valid").select(HASH_COLUMN, "features")
        return trusted_rows.dropDuplicates([HASH_COLUMN]), int(total - trusted)

    def add(
        self, spark: SparkSession, computed: DataFrame, *, rows: int, staging: str, tag: str
    ) -> int:
        """Append ``computed`` (``content_sha256, features``: new, good rows) to the cache.

        Written to ``staging`` (inside the run's attempt folder) first; each complete
        file is then moved in as ``part-<tag>-NNNNN.parquet`` (``tag``: unique to the
        attempt). Returns the entries added.
        """

        if rows == 0:
            return 0
        new = computed.dropDuplicates([HASH_COLUMN]).withColumn("model_key", F.lit(self.key))
        io.write_parquet(new.coalesce(max(1, math.ceil(rows / ROWS_PER_FILE))), staging)
        written = spark.read.parquet(staging).count()
        self.check_identity(spark)  # a foreign folder created meanwhile is not joined
        identity_uri = f"{self.folder}/{IDENTITY_FILE}"
        if io.read_text(spark, identity_uri) is None:
            io.write_text(spark, identity_uri, json.dumps(self.identity, indent=2) + "\n")
        io.move_files(spark, staging, self.folder, suffix=".parquet", prefix=f"part-{tag}")
        return int(written)


def open_cache(spark: SparkSession, uri: str, identity: dict[str, Any]) -> CacheRun:
    """This run's use of the cache at ``uri``: its identity checked, its entries listed."""
    cache = FeatureCache(uri, identity)
    cache.check_identity(spark)
    entries, rejected = cache.entries(spark)
    return CacheRun(cache, entries, rejected)


@dataclass
class CacheRun:
    """The steps of one run with the cache, in the order the job calls them."""

    cache: FeatureCache
    entries: DataFrame
    """Trusted entries, one per hash. Its file listing is taken once, when it is opened:
    files added later (by this run or another) are not read by this run."""
    rejected: int
    columns: tuple[str, ...] = (HASH_COLUMN, REUSED_COLUMN)
    """Columns the staged rows carry beside ``features`` and ``error``."""

    def mark_reused(self, files: DataFrame) -> DataFrame:
        """Add ``content_sha256`` (hex SHA-256 of ``content``, in the JVM) and ``reused``.

        Only the cached hashes are broadcast (~70 bytes per image): the scan keeps its
        partitioning and nothing of the images is shuffled.
        """
        hashed = files.withColumn(HASH_COLUMN, F.sha2(F.col("content"), 256))
        keys = self.entries.select(HASH_COLUMN).withColumn(REUSED_COLUMN, F.lit(True))
        return hashed.join(F.broadcast(keys), HASH_COLUMN, "left").withColumn(
            REUSED_COLUMN, F.coalesce(F.col(REUSED_COLUMN), F.lit(False))
        )

    @staticmethod
    def content_to_featurize() -> Any:
        """``content`` of the images to featurise, null for the reused ones: the UDF skips
        nulls, so a reused image is never decoded nor run through the model."""
        return F.when(~F.col(REUSED_COLUMN), F.col("content"))

    def add_new(self, spark: SparkSession, staged: DataFrame, *, attempt: str) -> dict[str, Any]:
        """Add the staged rows featurised OK by this run to the cache; the cache metrics."""

        reused = F.col(REUSED_COLUMN)
        hits, misses, new_ok = staged.agg(
            F.count(F.when(reused, 1)),
            F.count(F.when(~reused, 1)),
            F.count(F.when(~reused & F.col("error").isNull(), 1)),
        ).first()
        staging = f"{attempt}/_feature_cache_new"
        written = self.cache.add(
            spark,
            staged.filter(~reused & F.col("error").isNull()).select(HASH_COLUMN, "features"),
            rows=int(new_ok),
            staging=staging,
            tag=attempt.rsplit(io.ATTEMPT_SUFFIX, 1)[-1],
        )
        io.delete(spark, staging)
        return {
            "uri": self.cache.uri,
            "model_key": self.cache.key,
            "identity": self.cache.identity,
            "hits": int(hits),
            "misses": int(misses),
            "written": written,
            "rejected": self.rejected,
        }

    def fill_reused(self, staged: DataFrame) -> DataFrame:
        """The staged rows with the reused ones' ``features`` taken from the cache."""
        computed = staged.filter(~F.col(REUSED_COLUMN))
        reused = (
            staged.filter(F.col(REUSED_COLUMN))
            .drop("features")
            .join(self.entries, HASH_COLUMN, "inner")
        )
        return computed.unionByName(reused)

    def check_complete(self, written_rows: int, valid: int) -> None:
        """Every valid image has its features (an entry deleted mid-run would lose one)."""
        if written_rows != valid:
            raise FeatureCacheError(
                f"{self.cache.folder} changed during the run: {valid - written_rows} reused "
                "features could no longer be read; nothing published, run again"
            )
