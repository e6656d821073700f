"""Datasets already in S3 (``dataset_uri``): validated from a listing, read in place.

The EMR DAG's ``dataset_uri`` Param (default ``FRUITS_DATASET_URI``) names an
``s3://bucket/prefix/`` laid out ``<split>/<label>/<image>`` or holding packed parquet
shards (``*.parquet``) at its top level. Then:

* :func:`validate_s3_dataset` lists the prefix (``ListObjectsV2`` through the provider's
  ``S3Hook``; no object is downloaded) and fails with the reason when the bucket or the
  prefix is missing, holds only empty objects, or is laid out neither way; it returns
  counts per split and label (images layout) or the shards' bytes (packed layout);
* :func:`include.emr.dataset_steps.plan_for_s3_dataset` gives a new run plan whose Spark
  step reads that URI as its ``--input``; the DAG's upload task uploads nothing;
* with ``pack_s3_dataset``, :func:`include.emr.dataset_steps.steps_for_s3_dataset` puts a
  Spark step first that packs the images into parquet shards *on the cluster*
  (``spark_jobs.pack_step``; never on the Airflow worker), once per listing: a later run of
  the same listing reads those shards.

The Params' parsing: ``dataset_uri_setting`` (:mod:`include.params.common`) and
``pack_on_cluster_setting`` (:mod:`include.params.cluster`).

The listing is also the dataset's manifest
(:func:`include.datasets.manifest.manifest_from_s3_listing`).
For a packed dataset the listing cannot count images: the budget guard estimates them from
the shards' bytes (:data:`AVERAGE_IMAGE_BYTES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from include.datasets.local import IMAGE_EXTENSIONS
from include.datasets.manifest import manifest_from_s3_listing
from include.params.dataset_uri import normalise_uri, parse_dataset_uri

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

AVERAGE_IMAGE_BYTES = 5_000
"""~5 KB per Fruits-360 image (100x100 JPEG; spark_jobs/packing.py): a packed dataset's
image count for the budget estimate is its shards' bytes / this."""
_EXAMPLES = 3


class S3DatasetError(ValueError):
    """The S3 dataset cannot be used: the message says why."""


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def summarise_listing(uri: str, objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Layout and counts of the objects under ``uri`` (``ListObjectsV2`` items). Pure.

    Raises :class:`S3DatasetError` for an empty or wrongly laid out prefix.
    """
    uri = normalise_uri(uri)
    _, prefix = parse_dataset_uri(uri)
    base = f"{prefix}/" if prefix else ""
    files = []
    for item in objects:
        key = str(item["Key"])
        relative = key[len(base) :] if key.startswith(base) else ""
        if relative and not relative.endswith("/") and not _hidden(relative):
            files.append((relative, int(item.get("Size", 0))))
    if not files:
        raise S3DatasetError(f"{uri} holds no objects: the prefix is missing or empty")
    non_empty = [(rel, size) for rel, size in files if size > 0]
    if not non_empty:
        raise S3DatasetError(f"{uri} is empty: its {len(files)} object(s) are all zero-byte")
    shards = [(rel, size) for rel, size in non_empty if "/" not in rel and rel.endswith(".parquet")]
    if shards:
        total = sum(size for _, size in shards)
        return {
            "root": uri,
            "layout": "packed",
            "objects": len(files),
            "shards": len(shards),
            "total_bytes": total,
            "images": None,
            "estimated_images": max(1, total // AVERAGE_IMAGE_BYTES),
            "by_split_label": {},
        }
    by_split_label: dict[str, dict[str, int]] = {}
    empty, other = [], []
    for relative, size in files:
        parts = relative.split("/")
        if len(parts) < 3 or PurePosixPath(relative).suffix.lower() not in IMAGE_EXTENSIONS:
            other.append(relative)
            continue
        if size == 0:
            empty.append(relative)
            continue
        labels = by_split_label.setdefault(parts[0], {})
        labels[parts[1]] = labels.get(parts[1], 0) + 1
    images = sum(sum(labels.values()) for labels in by_split_label.values())
    if images == 0:
        examples = ", ".join(sorted(other)[:_EXAMPLES]) or ", ".join(sorted(empty)[:_EXAMPLES])
        raise S3DatasetError(
            f"{uri} is laid out neither as <split>/<label>/<image> (.jpg/.jpeg/.png) nor as "
            f"packed *.parquet shards at its top level; found e.g. {examples}"
        )
    return {
        "root": uri,
        "layout": "images",
        "objects": len(files),
        "images": images,
        "by_split": {split: sum(labels.values()) for split, labels in by_split_label.items()},
        "by_split_label": by_split_label,
        "empty_files": sorted(empty),
        "other_files": sorted(other)[:100],
        "labels": sorted({label for labels in by_split_label.values() for label in labels}),
    }


def list_s3_dataset(hook: S3Hook, uri: str) -> list[dict[str, Any]]:
    """Every object under ``uri`` (Key, Size, ETag, ...): one ListObjectsV2 page per 1000.

    Raises :class:`S3DatasetError` when the bucket does not exist or cannot be listed.
    """
    from botocore.exceptions import ClientError  # noqa: PLC0415 (lazy: loads botocore)

    bucket, prefix = parse_dataset_uri(uri)
    try:
        return list(
            hook.iter_file_metadata(prefix=f"{prefix}/" if prefix else "", bucket_name=bucket)
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "AccessDenied", "403", "404"):
            raise S3DatasetError(
                f"cannot list {uri}: {code} (the bucket does not exist, or Airflow's AWS "
                "connection may not list it)"
            ) from None
        raise


def validate_s3_dataset(hook: S3Hook, uri: str) -> dict[str, Any]:
    """List ``uri`` and check its layout (see :func:`summarise_listing`); no download.

    The summary's ``listing_digest`` identifies the listing's content (keys, sizes, ETags
    or checksums): the folder of its shards when the cluster packs it.
    """
    objects = list_s3_dataset(hook, uri)
    summary = summarise_listing(uri, objects)
    summary["listing_digest"] = manifest_from_s3_listing(normalise_uri(uri), objects).digest
    return summary
