"""Datasets already in S3 (``dataset_uri``): validated from a listing, read in place.

The EMR DAG's ``dataset_uri`` Param (default ``FRUITS_DATASET_URI``) names an
``s3://bucket/prefix/`` laid out ``<split>/<label>/<image>`` or holding packed parquet
shards (``*.parquet``) at its top level. Then:

* :func:`validate_s3_dataset` lists the prefix (``ListObjectsV2`` through the provider's
  ``S3Hook``; no object is downloaded) and fails with the reason when the bucket or the
  prefix is missing, holds only empty objects, or is laid out neither way; it returns
  counts per split and label (images layout) or the shards' bytes (packed layout);
* :func:`plan_for_s3_dataset` gives a new run plan whose Spark step reads that URI as its
  ``--input``; the DAG's upload task uploads nothing;
* with ``pack_s3_dataset``, :func:`steps_for_s3_dataset` puts a Spark step first that packs
  the images into parquet shards *on the cluster* (``spark_jobs.pack_step``; never on the
  Airflow worker), once per listing: a later run of the same listing reads those shards.

The listing is also the dataset's manifest
(:func:`include.reruns.fingerprint.manifest_from_s3_listing`).
For a packed dataset the listing cannot count images: the budget guard estimates them from
the shards' bytes (:data:`AVERAGE_IMAGE_BYTES`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from include.datasets.local import IMAGE_EXTENSIONS
from include.datasets.uri import parse_dataset_uri

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

AVERAGE_IMAGE_BYTES = 5_000
"""~5 KB per Fruits-360 image (100x100 JPEG; spark_jobs/packing.py): a packed dataset's
image count for the budget estimate is its shards' bytes / this."""
_EXAMPLES = 3


class S3DatasetError(ValueError):
    """The S3 dataset cannot be used: the message says why."""


def normalise_uri(uri: str) -> str:
    """``s3://bucket/prefix/`` with exactly one trailing slash (ValueError when malformed)."""
    bucket, prefix = parse_dataset_uri(uri)
    return f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"


def dataset_uri_setting(params: Mapping[str, Any], default: str | None) -> str | None:
    """The run's dataset URI: the Param when given, else the configuration's default."""
    value = params.get("dataset_uri")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"dataset_uri must be an s3:// URI or empty, got {value!r}")
    chosen = (value or "").strip() or (default or "").strip()
    return normalise_uri(chosen) if chosen else None


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
    from botocore.exceptions import ClientError

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
    from include.reruns.fingerprint import manifest_from_s3_listing

    objects = list_s3_dataset(hook, uri)
    summary = summarise_listing(uri, objects)
    summary["listing_digest"] = manifest_from_s3_listing(normalise_uri(uri), objects).digest
    return summary


def pack_on_cluster_setting(params: Mapping[str, Any]) -> bool:
    """The ``pack_s3_dataset`` Param (False when absent)."""
    value = params.get("pack_s3_dataset", False)
    if not isinstance(value, bool):
        raise ValueError(f"pack_s3_dataset must be true or false, got {value!r}")
    return value


def _with_input(steps: Iterable[Mapping[str, Any]], uri: str) -> list[dict[str, Any]]:
    """Copies of ``steps`` whose ``--input`` argument is ``uri``."""
    new = copy.deepcopy(list(steps))
    for step in new:
        args = step["HadoopJarStep"]["Args"]
        if "--input" not in args:
            raise ValueError(f"step {step.get('Name')!r} has no --input argument")
        args[args.index("--input") + 1] = uri
    return new


def plan_for_s3_dataset(
    plan: Mapping[str, Any], uri: str, *, pack_on_cluster: bool = False
) -> dict[str, Any]:
    """A new run plan reading ``uri`` in place: the step's ``--input`` is ``uri``.

    ``plan`` is not changed. ``dataset_prefix`` becomes None: nothing is uploaded. With
    ``pack_on_cluster``, :func:`steps_for_s3_dataset` may put a packing step first.
    """
    new = copy.deepcopy(dict(plan))
    uri = normalise_uri(uri)
    new["dataset_uri"] = uri
    new["dataset_prefix"] = None
    new["pack_s3_dataset"] = pack_on_cluster
    new["steps"] = _with_input(new["steps"], uri)
    return new


def packed_dataset_uri(plan: Mapping[str, Any], listing_digest: str) -> str:
    """Where the cluster packs the listing ``listing_digest``: one folder per listing, so an
    unchanged dataset is packed once and any change (a key, a size, an ETag) packs anew."""
    if not listing_digest or "/" in listing_digest:
        raise ValueError(f"not a listing digest: {listing_digest!r}")
    return f"s3://{plan['bucket']}/{plan['s3_packed_prefix']}/{listing_digest[:32]}/"


def steps_for_s3_dataset(
    plan: Mapping[str, Any], summary: Mapping[str, Any], *, packed_ready: bool
) -> tuple[list[dict[str, Any]], str]:
    """The run's EMR steps for its S3 dataset and a line saying why. Pure.

    Asked to pack (``plan["pack_s3_dataset"]``) an ``images`` layout: a packing step
    (:func:`include.emr.plan.build_pack_step`) writes the shards under
    :func:`packed_dataset_uri`, and the feature step reads them; when those shards are
    already complete (``packed_ready``: their ``_SUCCESS`` exists), the feature step reads
    them and nothing is packed again. Otherwise the plan's steps, reading in place.
    """
    from include.emr.plan import build_pack_step

    steps = [dict(step) for step in plan["steps"]]
    if not plan.get("dataset_uri") or not plan.get("pack_s3_dataset"):
        return steps, "the job reads the dataset in place"
    if summary.get("layout") != "images":
        return steps, f"{plan['dataset_uri']} is packed already: the job reads its shards"
    dest = packed_dataset_uri(plan, str(summary["listing_digest"]))
    if packed_ready:
        return _with_input(steps, dest), f"this listing was packed before: reading {dest}"
    code = plan["code_keys"]
    pack = build_pack_step(
        entry_script_uri=f"s3://{plan['bucket']}/{code['entry_script']}",
        py_files_uri=f"s3://{plan['bucket']}/{code['py_files']}",
        source_uri=plan["dataset_uri"],
        dest_uri=dest,
    )
    return [pack, *_with_input(steps, dest)], f"the cluster packs the dataset into {dest} first"
