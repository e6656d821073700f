"""Skip an unchanged run: the ``skip_if_unchanged`` task body of the three pipeline DAGs.

:func:`skip_if_unchanged` is that body (bad input fails without a retry); it runs
``emr_check_unchanged`` (both EMR DAGs, through ``s3_check_unchanged``: any run whose results
live in S3) or ``local_check_unchanged``. They fingerprint the run
(:mod:`include.reruns.history`), compare it with the last successful run's record, and return
None when the run can be skipped (the DAG's short-circuit task then skips every task after
it: no upload, no cluster) or the run's fingerprint data otherwise. Only a run that goes
ahead stages its manifest (published by :mod:`include.results.publish` after success).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from include.params.plan_types import LocalDataset, RunInfo, StoragePlan
from include.reruns.fingerprint import MANIFEST_FILE

log = logging.getLogger(__name__)

MANIFEST_STAGING_DIRNAME = "_manifests"
"""Local runs: ``<results>/_manifests/<run key>.json`` until the run's folder exists."""


def _fingerprint_data(fingerprint: Mapping[str, Any], manifest: Any, **more: Any) -> RunInfo:
    return {
        "fingerprint": fingerprint["fingerprint"],
        "components": fingerprint["components"],
        "manifest": manifest.summary(),
        **more,
    }


Platform = Literal["emr", "emr-serverless", "local"]
"""Which DAG's run: the cluster DAG, the Serverless DAG or the local one."""


def skip_if_unchanged(
    platform: Platform,
    params: Mapping[str, Any],
    *,
    plan: StoragePlan | LocalDataset,
    run_id: str,
) -> RunInfo | None:
    """The ``skip_if_unchanged`` short-circuit task of each DAG: None (skip every later task)
    when the run is unchanged, else its fingerprint data.

    ``plan``: the EMR DAGs' run plan, or the local DAG's ``validate_dataset`` output (its
    ``dataset_dir``); ``run_id``: the Airflow run id (the local run's folder name). Bad input
    (e.g. ``s3://`` weights that do not exist) fails without a retry: a retry fails the same
    way.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        if platform == "local":
            return _local_check(plan, params, run_id=run_id)
        return emr_check_unchanged(plan, params, serverless=platform == "emr-serverless")
    except (FileNotFoundError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from exc


# --- EMR -----------------------------------------------------------------------------------


def _emr_prefixes(plan: StoragePlan) -> tuple[str, str]:
    """(results base key, the run's staging key) from the plan's results prefix."""
    results_prefix = str(plan["results_prefix"]).strip("/")
    results_base = results_prefix.rsplit("/", 1)[0]  # <prefix>/results
    project_prefix = results_base.rsplit("/", 1)[0]  # <prefix>
    return results_base, f"{project_prefix}/runs/{plan['run_key']}"


def emr_check_unchanged(
    plan: StoragePlan, params: Mapping[str, Any], *, serverless: bool = False
) -> RunInfo | None:
    """None: skip (an earlier run holds the same results); else the run's fingerprint data.

    The fingerprint records the platform (``emr``, or ``emr-serverless`` with ``serverless``)
    and the release; a Serverless run also its architecture.
    """
    from include.params.cluster import emr_settings_from_params
    from include.params.common import guard_settings_from_params
    from include.params.serverless import serverless_settings_from_params

    guards = guard_settings_from_params(params, emr=True)
    if serverless:
        serverless_settings = serverless_settings_from_params(params)
        job = serverless_settings.job
        environment = {
            "platform": "emr-serverless",
            "release_label": serverless_settings.release_label,
            "architecture": serverless_settings.architecture,
        }
    else:
        settings = emr_settings_from_params(params)
        job = settings.job
        environment = {"platform": "emr", "release_label": settings.release_label}
    return s3_check_unchanged(plan, job, force=guards.force, environment=environment)


def s3_check_unchanged(
    plan: StoragePlan, job: Any, *, force: bool, environment: Mapping[str, str]
) -> RunInfo | None:
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
        from include.datasets.manifest import manifest_from_s3_listing
        from include.datasets.s3 import list_s3_dataset
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


# --- local ---------------------------------------------------------------------------------


def _local_check(
    dataset: LocalDataset, params: Mapping[str, Any], *, run_id: str
) -> RunInfo | None:
    """:func:`local_check_unchanged` with the Params and the local DAG's results folder."""
    from include.config import load_config
    from include.params.common import guard_settings_from_params, job_settings_from_params
    from include.params.job_args import safe_run_id
    from include.params.run_paths import LOCAL_DAG_ID, run_results_dir

    # The DAG's results folder: its last-success record and staged manifests.
    dag_dir = run_results_dir(load_config().results_dir, LOCAL_DAG_ID, run_id).parent
    return local_check_unchanged(
        job_settings_from_params(params),
        Path(dataset["dataset_dir"]),
        dag_dir,
        force=guard_settings_from_params(params, emr=False).force,
        run_key=safe_run_id(run_id),
    )


def local_check_unchanged(
    job: Any, dataset_dir: Path, results_dir: Path, *, force: bool, run_key: str
) -> RunInfo | None:
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
