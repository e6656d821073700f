"""A run on a dataset already in S3: the cluster plan reading it in place, or packing it first.

:func:`plan_for_s3_dataset` gives a new run plan whose Spark step reads the URI as its
``--input``; with ``pack_s3_dataset``, :func:`steps_for_s3_dataset` puts a Spark step first
that packs the images into parquet shards on the cluster, once per listing
(:func:`packed_dataset_uri`). The listing and its checks: :mod:`include.datasets.s3`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from include.emr.plan import build_pack_step
from include.params.dataset_uri import normalise_uri
from include.params.plan_types import ClusterPlan


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
    plan: ClusterPlan, uri: str, *, pack_on_cluster: bool = False
) -> ClusterPlan:
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


def packed_dataset_uri(plan: ClusterPlan, listing_digest: str) -> str:
    """Where the cluster packs the listing ``listing_digest``: one folder per listing, so an
    unchanged dataset is packed once and any change (a key, a size, an ETag) packs anew."""
    if not listing_digest or "/" in listing_digest:
        raise ValueError(f"not a listing digest: {listing_digest!r}")
    return f"s3://{plan['bucket']}/{plan['s3_packed_prefix']}/{listing_digest[:32]}/"


def steps_for_s3_dataset(
    plan: ClusterPlan, summary: Mapping[str, Any], *, packed_ready: bool
) -> tuple[list[dict[str, Any]], str]:
    """The run's EMR steps for its S3 dataset and a line saying why. Pure.

    Asked to pack (``plan["pack_s3_dataset"]``) an ``images`` layout: a packing step
    (:func:`include.emr.plan.build_pack_step`) writes the shards under
    :func:`packed_dataset_uri`, and the feature step reads them; when those shards are
    already complete (``packed_ready``: their ``_SUCCESS`` exists), the feature step reads
    them and nothing is packed again. Otherwise the plan's steps, reading in place.
    """

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
