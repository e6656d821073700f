"""Airflow Assets the pipelines publish: the latest PCA output and the latest features.

Both pipeline DAGs (EMR and local) emit an event for each Asset when a run *succeeds*, from
their ``publish_results`` task; a run that failed or was skipped as unchanged emits none.
The event's ``extra`` (:func:`asset_extra`) says where that run's output is and what it
holds, so a consumer scheduled on the Asset (``dags/fruits_pca_consumer.py``) reads the
run that triggered it without knowing which pipeline made it.

The Assets are named, not addressed by URI: each run writes to its own folder (local or
S3), and ``extra`` carries that folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

ASSET_GROUP = "fruits-features"
PCA_ASSET = Asset(name="fruits_features_pca", group=ASSET_GROUP)
FEATURES_ASSET = Asset(name="fruits_features_features", group=ASSET_GROUP)


def asset_extra(
    *,
    kind: str,
    dag_id: str,
    run_id: str,
    output_uri: str,
    local_dir: str | None,
    metrics: Mapping[str, Any],
    fingerprint: str,
) -> dict[str, Any]:
    """The ``extra`` of one Asset event (JSON data).

    ``kind`` is ``"pca"`` or ``"features"``; ``output_uri`` is the run's folder of that
    output (``s3://...`` or a local path); ``local_dir`` a local copy when one exists.
    """
    if kind not in ("pca", "features"):
        raise ValueError(f"kind must be 'pca' or 'features', got {kind!r}")
    counts = metrics.get("counts") or {}
    pca = metrics.get("pca") or {}
    extra: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "uri": output_uri,
        "local_dir": local_dir,
        "fingerprint": fingerprint,
        "valid_images": counts.get("valid_images"),
        "bad_files": counts.get("bad_files"),
        "labels": len(counts.get("by_label") or {}),
    }
    if kind == "pca":
        extra["k"] = pca.get("k")
        extra["variance_at_k"] = pca.get("variance_at_k")
    else:
        extra["feature_dim"] = metrics.get("feature_dim")
    return extra
