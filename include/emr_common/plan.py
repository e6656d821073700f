"""The part of a run plan both EMR DAGs share: storage plan, run tags, tag values, Spark defaults.

Pure: no AWS calls, cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import PurePosixPath

from include.config import EMR_MANAGED_POLICY_TAG, PROJECT_TAG, PipelineConfig
from include.datasets.upload import dataset_key_prefix
from include.params.job_args import (
    CONVERTED_RUNTIMES,
    JobSettings,
    safe_run_id,
)
from include.params.plan_types import StoragePlan
from include.params.run_paths import run_results_dir

_WEIGHTS_BUILTIN = ("imagenet", "none")


# EMR tag values: letters and digits of any language, spaces and _ . : / = + - @, at most
# 256 characters (EMR Management Guide, "Restrictions that apply to tagging resources").
_TAG_VALUE_REFUSED = re.compile(r"[^\w .:/=+@-]")

_TAG_VALUE_MAX = 256


def tag_value(value: str, *, allowed: re.Pattern[str] | None = None, max_length: int = 0) -> str:
    """``value`` as an EMR tag value: refused characters become ``_``, cut to 256 characters.

    Airflow run ids made through the API may hold any character (``manual__x#1``, quotes);
    RunJobFlow would refuse the whole request. The ``aws:`` prefix is reserved, so it is
    masked too. Deterministic, so every task of a run finds the same tags. ``allowed`` /
    ``max_length``: another service's TagValue rule (a pattern one allowed character
    matches whole, e.g. EMR Serverless's from botocore's model) instead of EMR's.
    """
    if allowed is None:
        cleaned = _TAG_VALUE_REFUSED.sub("_", value)
    else:
        cleaned = "".join(c if allowed.fullmatch(c) else "_" for c in value)
    cleaned = cleaned[: max_length or _TAG_VALUE_MAX]
    if cleaned[:4].lower() == "aws:":
        cleaned = "_" + cleaned[1:]
    return cleaned


def run_tags(
    *,
    dag_id: str,
    run_id: str,
    extra: Mapping[str, str] | None = None,
    value: Callable[[str], str] = tag_value,
) -> dict[str, str]:
    """Tags of a run's clusters: the sweeper and the terminate task look for them.

    Always carries ``for-use-with-amazon-emr-managed-policies=true``: the v2 service policy
    that ``create-roles`` attaches acts only on resources with it (see ``include.config``).
    ``value``: the sanitizer of the dag_id and run_id values (EMR's :func:`tag_value`).
    """
    return {
        **(extra or {}),
        EMR_MANAGED_POLICY_TAG: "true",
        "Project": PROJECT_TAG,
        "dag_id": value(dag_id),
        "run_id": value(run_id),
    }


def job_spark_defaults(job: JobSettings) -> dict[str, str]:
    """Spark settings the job needs wherever it runs on EMR (cluster and Serverless)."""
    return {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # One Arrow batch per model call: a decoded 224x224 image is ~0.6 MB.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(job.batch_size),
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
    }


def build_storage_plan(
    job: JobSettings,
    config: PipelineConfig,
    *,
    dag_id: str,
    run_id: str,
    dataset_dir: str | None,
    pack_dataset: bool,
    download_features: bool,
) -> StoragePlan:
    """The part of a run plan that both EMR DAGs (cluster and Serverless) share, as JSON data.

    Where the run's dataset, job package, converted model, weights and results live in S3
    and locally; ``job`` with a local weights file rewritten to its S3 key; ``uris``: the
    job's entry script, zip, ``--input``, ``--output`` and ``--model`` URIs. Pure.
    """
    rid = safe_run_id(run_id)
    prefix = config.prefix.strip("/")
    bucket = config.bucket
    dataset_dir = dataset_dir or str(config.data_dir)
    dataset_prefix = dataset_key_prefix(prefix, dataset_dir, pack=pack_dataset)
    code_prefix = f"{prefix}/runs/{rid}/code"
    results_base = f"{prefix}/results"

    def uri(key: str) -> str:
        return f"s3://{bucket}/{key}"

    weights = job.weights
    weights_file = None
    if weights not in _WEIGHTS_BUILTIN and not weights.startswith("s3://"):
        weights_file = weights
        weights = uri(f"{code_prefix}/weights/{PurePosixPath(weights).name}")
    code = {
        "entry_script": f"{code_prefix}/entrypoint.py",
        "py_files": f"{code_prefix}/spark_jobs.zip",
        "bootstrap": f"{code_prefix}/bootstrap.sh",
        "requirements": f"{code_prefix}/requirements.txt",
    }
    if job.runtime in CONVERTED_RUNTIMES:
        # The converted model next to the job package (a server-side copy of the
        # content-addressed one under models/, see include/staging/model.py).
        code["model"] = f"{code_prefix}/model.zip"
    return {
        "aws_conn_id": config.aws_conn_id,
        "region": config.region,
        "bucket": bucket,
        "run_key": rid,
        "dataset_dir": dataset_dir,
        "dataset_prefix": dataset_prefix,
        "pack_dataset": pack_dataset,
        "code_keys": code,
        "models_prefix": f"{prefix}/models",
        "job": asdict(JobSettings(**{**asdict(job), "weights": weights})),
        "weights_file": weights_file,
        "weights_key": weights.removeprefix(f"s3://{bucket}/") if weights_file else None,
        "results_prefix": f"{results_base}/{rid}",
        "results_dir": str(run_results_dir(config.results_dir, dag_id, run_id)),
        "download_features": download_features,
        "uris": {
            "entry_script": uri(code["entry_script"]),
            "py_files": uri(code["py_files"]),
            "input": uri(dataset_prefix + "/"),
            "output": uri(results_base),
            "model": uri(code["model"]) if "model" in code else None,
        },
    }
