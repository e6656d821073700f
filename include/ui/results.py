"""A run's published results, as the UI plugin serves them: local folder first, then S3.

Only a fixed set of files can be named: ``metrics.json``, ``cost_estimate.json`` and the
report's ``report/<name>.html|png``; anything else, or a path that resolves outside the run's
folder (a symlink), is :class:`NotServed`. The local folder is
:func:`include.params.run_paths.run_results_dir`; an EMR run whose local copy is missing is
read from ``s3://<bucket>/<prefix>/results/<run id>/`` (what ``emr_publish`` uploaded) with the
provider's ``S3Hook``. Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.config import PipelineConfig
from include.params.job_args import safe_run_id
from include.params.run_paths import LOCAL_DAG_ID, run_results_dir
from include.reruns.history import read_local_record, read_s3_record, record_key
from include.results.report import ReportError, load_cluster_cost, load_estimate
from include.results.serverless_cost import load_serverless_cost
from include.staging.s3 import make_s3_hook

LOCAL_DAG = LOCAL_DAG_ID
EMR_DAGS = ("fruits_emr_pipeline", "fruits_emr_serverless_pipeline")
PIPELINE_DAGS = (LOCAL_DAG, *EMR_DAGS)
"""The DAGs whose runs publish results (the sweeper and the Asset consumer publish none)."""

TOP_FILES = ("metrics.json", "cost_estimate.json")
REPORT_DIRNAME = "report"
_REPORT_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,120}\.(html|png)")
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}


class NotServed(LookupError):
    """The file is not one a run publishes, or this run has no such file."""


def check_pipeline_dag(dag_id: str) -> str:
    """``dag_id`` if it is one of :data:`PIPELINE_DAGS`, else NotServed."""
    if dag_id not in PIPELINE_DAGS:
        raise NotServed(f"{dag_id!r} is not one of the project's pipeline DAGs")
    return dag_id


def served_name(name: str) -> str:
    """``name`` (relative to the run's folder) if it may be served, else NotServed.

    ``metrics.json``, ``cost_estimate.json`` or ``report/<file>.html|png`` (one segment,
    no leading dot): never ``..``, an absolute path or another folder.
    """
    if name in TOP_FILES:
        return name
    folder, _, file = name.partition("/")
    if folder == REPORT_DIRNAME and _REPORT_FILE.fullmatch(file) and ".." not in file:
        return name
    raise NotServed(f"{name!r} is not a file a run publishes")


@dataclass(frozen=True)
class Served:
    """One file's bytes, its media type and where it came from (a path or an s3:// URI)."""

    content: bytes
    media_type: str
    source: str


def local_file(results_root: Path, dag_id: str, run_id: str, name: str) -> Path | None:
    """The run's local file ``name`` (checked by :func:`served_name`), or None when absent.

    NotServed when ``name`` is not servable or resolves outside the run's folder.
    """
    folder = run_results_dir(results_root, check_pipeline_dag(dag_id), run_id)
    path = folder / served_name(name)
    if not path.is_file():
        return None
    if not path.resolve().is_relative_to(folder.resolve()):
        raise NotServed(f"{name!r} leaves the run's results folder")
    return path


def s3_results_key(config: PipelineConfig, run_id: str, name: str) -> str:
    """The S3 key of an EMR run's published file (``<prefix>/results/<run id>/<name>``)."""
    return f"{config.prefix.strip('/')}/results/{safe_run_id(run_id)}/{served_name(name)}"


def s3_file(config: PipelineConfig, run_id: str, name: str) -> bytes | None:
    """An EMR run's published file read from S3 with the provider's S3Hook; None if absent."""

    hook = make_s3_hook(config.aws_conn_id)
    key = s3_results_key(config, run_id, name)
    if not hook.check_for_key(key, bucket_name=config.bucket):
        return None
    return hook.get_key(key, bucket_name=config.bucket).get()["Body"].read()


def read_result(config: PipelineConfig, dag_id: str, run_id: str, name: str) -> Served:
    """The run's file ``name``: the local copy, else (EMR DAGs) the one beside its S3
    results. NotServed when neither exists or ``name`` may not be served."""
    media = MEDIA_TYPES[Path(served_name(name)).suffix]
    path = local_file(config.results_dir, dag_id, run_id, name)
    if path is not None:
        return Served(path.read_bytes(), media, str(path))
    if dag_id in EMR_DAGS:
        content = s3_file(config, run_id, name)
        if content is not None:
            uri = f"s3://{config.bucket}/{s3_results_key(config, run_id, name)}"
            return Served(content, media, uri)
    raise NotServed(f"run {run_id} of {dag_id} has no {name}")


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cost_figures(run_dir: Path) -> dict[str, Any]:
    """The run's estimated and actual cost (USD) from what it published beside its results.

    ``estimated_usd``: the budget guard's ``cost_estimate.json``; ``actual_usd``: the
    cluster's instance-hours (``cluster.json``) or the Serverless job run's billed usage
    (``job_run.json``), priced as the report prices them; ``kind``: local, emr,
    emr-serverless or unknown; ``error``: why a figure could not be read.
    """

    run_dir = Path(run_dir)
    estimate = load_estimate(run_dir)
    figures: dict[str, Any] = {
        "estimated_usd": (estimate or {}).get("estimated_usd"),
        "actual_usd": None,
        "kind": "unknown",
        "error": None,
    }
    try:
        if (run_dir / "cluster.json").is_file():
            figures.update(
                kind="emr", actual_usd=load_cluster_cost(run_dir / "cluster.json")["estimated_usd"]
            )
        elif (serverless := load_serverless_cost(run_dir)) is not None:
            figures.update(kind="emr-serverless", actual_usd=serverless["estimated_usd"])
        elif run_dir.parent.name == LOCAL_DAG:
            figures.update(kind="local", actual_usd=0.0)  # local Spark: nothing billed
    except (ReportError, ValueError) as exc:
        figures["error"] = str(exc)
    return figures


def run_summary(run_dir: Path) -> dict[str, Any] | None:
    """What the runs table shows of a run's results; None when it has no ``metrics.json``.

    ``images`` (valid), ``k``, ``variance`` (kept at k), ``featurized``/``reused`` (feature
    cache), ``report`` (whether ``report/report.html`` exists) and :func:`cost_figures`.
    """
    metrics = _json(Path(run_dir) / "metrics.json")
    if metrics is None:
        return None
    counts: Mapping[str, Any] = metrics.get("counts") or {}
    pca: Mapping[str, Any] = metrics.get("pca") or {}
    return {
        "images": counts.get("valid_images"),
        "k": pca.get("k"),
        "variance": pca.get("variance_at_k"),
        "featurized": counts.get("featurized"),
        "reused": counts.get("reused"),
        "report": (Path(run_dir) / REPORT_DIRNAME / "report.html").is_file(),
        **cost_figures(run_dir),
    }


def last_success_record(config: PipelineConfig, dag_id: str) -> dict[str, Any] | None:
    """The DAG's last-success record (:mod:`include.reruns.history`): local runs' in the
    DAG's results folder, EMR runs' beside the runs' results in S3. None when there is none."""

    if check_pipeline_dag(dag_id) == LOCAL_DAG:
        return read_local_record(run_results_dir(config.results_dir, dag_id, "x").parent)

    hook = make_s3_hook(config.aws_conn_id)
    return read_s3_record(hook, config.bucket, record_key(f"{config.prefix.strip('/')}/results"))
