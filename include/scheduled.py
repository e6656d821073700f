"""Task bodies of the scheduled-run guards, shared by the EMR and the local DAG.

* ``*_check_unchanged``: fingerprint the run (:mod:`include.reruns.history`), compare it with
  the last successful run's record, and return None when the run can be skipped (the DAG's
  short-circuit task then skips every task after it: no upload, no cluster) or the run's
  fingerprint data otherwise. Only a run that goes ahead stages its manifest.
* :func:`emr_check_budget`: the cost estimate (:mod:`include.costs.budget`) before any cluster.
* ``*_publish``: after a successful run, write ``manifest.json``, ``fingerprint.json`` (and
  for EMR ``cost_estimate.json`` and the report) beside the results, then the last-success
  record, and return the Assets' event extras (:mod:`include.results.assets`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.reruns.fingerprint import FINGERPRINT_FILE, MANIFEST_FILE, build_success_record

log = logging.getLogger(__name__)

MANIFEST_STAGING_DIRNAME = "_manifests"
"""Local runs: ``<results>/_manifests/<run key>.json`` until the run's folder exists."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def labels_count(dataset: Mapping[str, Any]) -> dict[str, int]:
    """Images per label over every split, from a ``DatasetSummary.to_dict()``."""
    by_label: dict[str, int] = {}
    for labels in (dataset.get("by_split_label") or {}).values():
        for label, count in labels.items():
            by_label[label] = by_label.get(label, 0) + int(count)
    return by_label


def _fingerprint_data(fingerprint: Mapping[str, Any], manifest: Any, **more: Any) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint["fingerprint"],
        "components": fingerprint["components"],
        "manifest": manifest.summary(),
        **more,
    }


# --- EMR -----------------------------------------------------------------------------------


def _emr_prefixes(plan: Mapping[str, Any]) -> tuple[str, str]:
    """(results base key, the run's staging key) from the plan's results prefix."""
    results_prefix = str(plan["results_prefix"]).strip("/")
    results_base = results_prefix.rsplit("/", 1)[0]  # <prefix>/results
    project_prefix = results_base.rsplit("/", 1)[0]  # <prefix>
    return results_base, f"{project_prefix}/runs/{plan['run_key']}"


def emr_check_unchanged(
    plan: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any] | None:
    """None: skip (an earlier run holds the same results); else the run's fingerprint data."""
    from include.params.cluster import emr_settings_from_params
    from include.params.common import guard_settings_from_params

    settings = emr_settings_from_params(params)
    guards = guard_settings_from_params(params, emr=True)
    return s3_check_unchanged(
        plan,
        settings.job,
        force=guards.force,
        environment={"platform": "emr", "release_label": settings.release_label},
    )


def s3_check_unchanged(
    plan: Mapping[str, Any], job: Any, *, force: bool, environment: Mapping[str, str]
) -> dict[str, Any] | None:
    """:func:`emr_check_unchanged` for any run whose results live in S3 (both EMR DAGs):
    ``job`` the run's ``JobSettings``, ``environment`` what else enters the fingerprint."""
    from include.reruns.history import (
        decide,
        fingerprint_run,
        read_s3_record,
        record_key,
        s3_object_checksum,
        s3_results_exist,
    )
    from include.staging.s3 import make_s3_hook

    hook = make_s3_hook(plan["aws_conn_id"])
    weights = job.weights
    checksum = s3_object_checksum(hook, weights) if weights.startswith("s3://") else None
    environment = dict(environment)
    if plan.get("dataset_uri"):
        from include.datasets.s3 import list_s3_dataset
        from include.reruns.fingerprint import manifest_from_s3_listing
        from include.reruns.history import fingerprint_from_manifest

        uri = plan["dataset_uri"]
        manifest = manifest_from_s3_listing(uri, list_s3_dataset(hook, uri))
        fingerprint = fingerprint_from_manifest(
            job, manifest, environment=environment, s3_weights_checksum=checksum
        )
    else:
        manifest, fingerprint = fingerprint_run(
            job,
            Path(plan["dataset_dir"]),
            environment=environment,
            s3_weights_checksum=checksum,
        )
    bucket = plan["bucket"]
    results_base, staging = _emr_prefixes(plan)
    record = read_s3_record(hook, bucket, record_key(results_base))
    decision = decide(
        record,
        fingerprint,
        force=force,
        earlier_results_exist=record is not None and s3_results_exist(hook, record),
    )
    log.info("%s", decision.reason)
    if decision.skip:
        log.info("nothing is uploaded and no cluster is created; the run ends success")
        return None
    manifest_key = f"{staging}/{MANIFEST_FILE}"
    hook.load_string(
        json.dumps(manifest.to_dict()),
        key=manifest_key,
        bucket_name=bucket,
        replace=True,
        encrypt=True,
    )
    return _fingerprint_data(fingerprint, manifest, manifest_key=manifest_key)


def emr_check_budget(
    dataset: Mapping[str, Any], params: Mapping[str, Any], *, region: str | None = None
) -> dict[str, Any]:
    """The run's cost estimate in ``region`` (default: the configuration's); raises
    ``BudgetExceededError`` when over ``max_cost_usd``."""
    from include.config import load_config
    from include.costs.budget import check_budget, estimate_run_cost, runtime_of
    from include.params.cluster import emr_settings_from_params
    from include.params.common import guard_settings_from_params

    settings = emr_settings_from_params(params)
    guards = guard_settings_from_params(params, emr=True)
    job = settings.job
    estimate = estimate_run_cost(
        images=images_of(dataset, job),
        runtime=runtime_of(job),
        instance_type=settings.instance_type,
        core_nodes=settings.core_nodes,
        poke_interval_s=settings.poke_interval_seconds,
        region=region or load_config().region,
    )
    log.info("%s (budget $%.2f)", estimate.describe(), guards.max_cost_usd)
    log_cache_upper_bound(settings.feature_cache)
    assert guards.max_cost_usd is not None
    check_budget(estimate, guards.max_cost_usd)
    return {
        **estimate.to_dict(),
        "max_cost_usd": guards.max_cost_usd,
        "upper_bound_feature_cache": settings.feature_cache,
    }


def log_cache_upper_bound(feature_cache: bool) -> None:
    """Say that the estimate is an upper bound when the feature cache is on."""
    if feature_cache:
        # Which images the cache holds is only known from their content hashes, computed
        # on the cluster: the estimate counts every image, an upper bound.
        log.info(
            "upper bound: images already in the feature cache are not featurised again, "
            "so the run may cost less"
        )


def images_of(dataset: Mapping[str, Any], job: Any) -> int:
    """How many images the run featurises, from the validated dataset's summary."""
    from include.costs.budget import images_to_featurise

    if dataset.get("layout") == "packed":
        # A listing of shards cannot count images: estimated from their bytes, and only the
        # total cap applies (the per-label counts are unknown).
        estimated = int(dataset["estimated_images"])
        log.info("packed S3 dataset: ~%d images estimated from its shards' bytes", estimated)
        cap = job.max_images if job.mode == "mini" else None
        images = min(estimated, cap) if cap is not None else estimated
    else:
        images = images_to_featurise(
            labels_count(dataset),
            mode=job.mode,
            max_images=job.max_images,
            per_class=job.per_class,
        )
    return images


def write_estimate(run_dir: Path, estimate: Mapping[str, Any] | None) -> Path | None:
    """``<run_dir>/cost_estimate.json`` for the report (None: nothing to write)."""
    from include.costs.budget import ESTIMATE_FILE
    from include.reruns.history import write_json_atomic

    if not estimate:
        return None
    return write_json_atomic(Path(run_dir) / ESTIMATE_FILE, dict(estimate))


def _metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _asset_extras(
    record: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    pca: tuple[str, str | None],
    features: tuple[str, str | None],
) -> dict[str, dict[str, Any]]:
    """Log the recorded success; the extras of the PCA and features Asset events."""
    from include.results.assets import asset_extra

    log.info(
        "recorded run %s as the last success (fingerprint %s)",
        record["run_id"],
        record["fingerprint"],
    )
    common = {
        "dag_id": record["dag_id"],
        "run_id": record["run_id"],
        "metrics": metrics,
        "fingerprint": record["fingerprint"],
    }
    return {
        "pca": asset_extra(kind="pca", output_uri=pca[0], local_dir=pca[1], **common),
        "features": asset_extra(
            kind="features", output_uri=features[0], local_dir=features[1], **common
        ),
    }


def emr_publish(
    plan: Mapping[str, Any],
    run_dir: str,
    run_info: Mapping[str, Any],
    *,
    dag_id: str,
    run_id: str,
) -> dict[str, dict[str, Any]]:
    """Write the run's manifest, fingerprint, estimate and report beside its S3 results,
    then the last-success record; return the Assets' extras. Called only after success."""
    from include.costs.budget import ESTIMATE_FILE
    from include.reruns.history import record_key, write_json_atomic, write_s3_record
    from include.staging.s3 import make_s3_hook

    hook = make_s3_hook(plan["aws_conn_id"])
    bucket, prefix = plan["bucket"], str(plan["results_prefix"]).strip("/")
    results_uri = f"s3://{bucket}/{prefix}"
    local = Path(run_dir)
    fingerprint = {"fingerprint": run_info["fingerprint"], "components": run_info["components"]}
    write_json_atomic(local / FINGERPRINT_FILE, {**fingerprint, "manifest": run_info["manifest"]})
    # Server-side copy: the manifest staged before the run is not uploaded a second time.
    hook.copy_object(
        source_bucket_key=run_info["manifest_key"],
        dest_bucket_key=f"{prefix}/{MANIFEST_FILE}",
        source_bucket_name=bucket,
        dest_bucket_name=bucket,
        ServerSideEncryption="AES256",
    )
    files = {FINGERPRINT_FILE: local / FINGERPRINT_FILE}
    if (local / ESTIMATE_FILE).is_file():
        files[ESTIMATE_FILE] = local / ESTIMATE_FILE
    report_dir = local / "report"
    if report_dir.is_dir():
        for path in sorted(report_dir.iterdir()):
            if path.is_file():
                files[f"report/{path.name}"] = path
    for name, path in files.items():
        hook.load_file(path, key=f"{prefix}/{name}", bucket_name=bucket, replace=True, encrypt=True)
    metrics = _metrics(local)
    report_uri = f"{results_uri}/report/report.html" if report_dir.is_dir() else None
    record = build_success_record(
        fingerprint,
        dag_id=dag_id,
        run_id=run_id,
        run_key=str(plan["run_key"]),
        results_uri=results_uri,
        report_uri=report_uri,
        finished_at=_now(),
        counts=metrics.get("counts"),
    )
    results_base, _ = _emr_prefixes(plan)
    write_s3_record(hook, bucket, record_key(results_base), record)  # last: only on success
    return _asset_extras(
        record,
        metrics,
        pca=(f"{results_uri}/pca", str(local / "pca")),
        features=(
            f"{results_uri}/features",
            str(local / "features") if (local / "features").is_dir() else None,
        ),
    )


# --- local ---------------------------------------------------------------------------------


def local_check_unchanged(
    job: Any, dataset_dir: Path, results_dir: Path, *, force: bool, run_key: str
) -> dict[str, Any] | None:
    """None: skip (an earlier local run holds the same results); else the fingerprint data."""
    from include.reruns.history import (
        decide,
        fingerprint_run,
        local_results_exist,
        read_local_record,
        write_json_atomic,
    )

    manifest, fingerprint = fingerprint_run(
        job, Path(dataset_dir), environment={"platform": "local"}
    )
    record = read_local_record(results_dir)
    decision = decide(
        record,
        fingerprint,
        force=force,
        earlier_results_exist=record is not None and local_results_exist(record),
    )
    log.info("%s", decision.reason)
    if decision.skip:
        log.info("the Spark job is not run; the run ends success")
        return None
    staged = Path(results_dir) / MANIFEST_STAGING_DIRNAME / f"{run_key}.json"
    write_json_atomic(staged, manifest.to_dict())
    return _fingerprint_data(fingerprint, manifest, manifest_file=str(staged))


def local_publish(
    run_dir: str, run_info: Mapping[str, Any], *, dag_id: str, run_id: str
) -> dict[str, dict[str, Any]]:
    """Move the manifest into the run's folder, write its fingerprint, then the record."""
    from include.reruns.history import write_json_atomic, write_local_record

    local = Path(run_dir)
    fingerprint = {"fingerprint": run_info["fingerprint"], "components": run_info["components"]}
    write_json_atomic(local / FINGERPRINT_FILE, {**fingerprint, "manifest": run_info["manifest"]})
    staged = Path(run_info["manifest_file"])
    if staged.is_file():
        shutil.move(staged, local / MANIFEST_FILE)
    elif not (local / MANIFEST_FILE).is_file():  # (a retry finds it moved already)
        raise FileNotFoundError(f"the run's staged manifest {staged} is missing")
    metrics = _metrics(local)
    report = local / "report" / "report.html"
    record = build_success_record(
        fingerprint,
        dag_id=dag_id,
        run_id=run_id,
        run_key=local.name,
        results_uri=str(local),
        report_uri=str(report) if report.is_file() else None,
        finished_at=_now(),
        counts=metrics.get("counts"),
    )
    write_local_record(local.parent, record)
    return _asset_extras(
        record,
        metrics,
        pca=(str(local / "pca"), str(local / "pca")),
        features=(str(local / "features"), str(local / "features")),
    )
