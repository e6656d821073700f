"""Publishing a successful run (task bodies of the EMR and the local DAG).

``*_publish``: write ``manifest.json``, ``fingerprint.json`` (and for EMR
``cost_estimate.json`` and the report) beside the results, then the last-success record
(:mod:`include.reruns.history`), and return the Assets' event extras
(:mod:`include.results.assets`). Called only after the run succeeded.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.costs.budget import ESTIMATE_FILE
from include.params.plan_types import RunInfo, StoragePlan
from include.reruns.fingerprint import FINGERPRINT_FILE, MANIFEST_FILE, build_success_record
from include.reruns.history import (
    record_key,
    write_json_atomic,
    write_local_record,
    write_s3_record,
)
from include.reruns.skip import _emr_prefixes
from include.staging.s3 import make_s3_hook

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    from include.results.assets import asset_extra  # noqa: PLC0415 (lazy: loads airflow and sqlalchemy)

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
    plan: StoragePlan,
    run_dir: str,
    run_info: RunInfo,
    *,
    dag_id: str,
    run_id: str,
) -> dict[str, dict[str, Any]]:
    """Write the run's manifest, fingerprint, estimate and report beside its S3 results,
    then the last-success record; return the Assets' extras. Called only after success."""

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


def local_publish(
    run_dir: str, run_info: RunInfo, *, dag_id: str, run_id: str
) -> dict[str, dict[str, Any]]:
    """Move the manifest into the run's folder, write its fingerprint, then the record."""

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
