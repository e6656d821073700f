"""The one place where the pipeline's configuration lives.

Every setting comes from an environment variable with a safe default, read when
:func:`load_config` is called (inside a task, at run time), never at DAG parse time.
The only parse-time reads are :func:`emr_schedule` and :func:`sweeper_schedule`,
which Airflow needs to build the DAG objects; they read a plain env var, no network.

See the README's "Configuration reference" for the list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum

PROJECT_TAG = "fruits-features"
"""Value of the ``Project`` tag on every cluster this project creates (the sweeper's key)."""

REPO_ROOT = Path(__file__).resolve().parent.parent

DAG_OWNER = "fruits-data-team"
"""Owner of every task of the project's DAGs (shown in the UI; the integrity tests check it)."""
DAG_START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")
"""A fixed start date in the past for every DAG (with catchup=False nothing is backfilled)."""


def dag_default_args(retry_delay: timedelta) -> dict[str, Any]:
    """``default_args`` of the project's DAGs: owner and one retry (a new dict each call)."""
    return {"owner": DAG_OWNER, "retries": 1, "retry_delay": retry_delay}


# EU regions only by default: the dataset and the results stay in the EU (GDPR).
ALLOWED_REGIONS: tuple[str, ...] = (
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
)
DEFAULT_REGION = "eu-west-1"

DEFAULT_RELEASE_LABEL = "emr-7.12.0"
"""emr-7.12.0 ships Spark 3.5.6 and Python 3.11: requirements.txt pins pyspark to match."""

# Hourly on-demand prices in eu-west-1, USD: (EC2, EMR uplift). An *estimate* for the
# report and the status command, checked against the public price pages in 2026;
# real bills depend on region, spot prices, EBS and data transfer.
PRICE_TABLE_USD_PER_HOUR: dict[str, tuple[float, float]] = {
    "m5.xlarge": (0.214, 0.048),
    "m5.2xlarge": (0.428, 0.096),
    "m5.4xlarge": (0.856, 0.192),
    "m6i.xlarge": (0.214, 0.048),
    "m6i.2xlarge": (0.428, 0.096),
    "c5.2xlarge": (0.384, 0.085),
    "c6i.2xlarge": (0.384, 0.085),
    "r5.xlarge": (0.282, 0.063),
}
ALLOWED_INSTANCE_TYPES: tuple[str, ...] = tuple(PRICE_TABLE_USD_PER_HOUR)

INSTANCE_VCPUS: dict[str, int] = {
    "m5.xlarge": 4,
    "m5.2xlarge": 8,
    "m5.4xlarge": 16,
    "m6i.xlarge": 4,
    "m6i.2xlarge": 8,
    "c5.2xlarge": 8,
    "c6i.2xlarge": 8,
    "r5.xlarge": 4,
}
"""vCPUs per instance type (EC2 instance type pages); YARN offers all of them to executors."""

# Featurisation throughput per vCPU, images/s, by model runtime (the job's ``--runtime``;
# today's job runs Keras only). Measured 2026-12-02 for issue 10 on a 2-core AMD EPYC dev
# machine with AVX2/FMA and no AVX-512 (docs: ../shared/FIELD-NOTES.md, "Measured
# 2026-12-02"): MobileNetV2 224 px, batch 64, one thread per process. ONNX Runtime 1.32:
# 177 images/s on the 2 cores (2 processes); Keras 3 predict_on_batch: 25-27 per core.
# EMR's vCPUs are hyperthreads of other CPUs: the budget guard's estimate, not a promise.
THROUGHPUT_IMAGES_PER_S_PER_VCPU: dict[str, float] = {"onnx": 88.0, "keras": 25.0}
DEFAULT_RUNTIME = "keras"
"""The runtime assumed when the job settings name none (the job had no other before issue 10)."""
CLUSTER_START_BOOTSTRAP_S = 600
"""Seconds from RunJobFlow to a WAITING cluster with the bootstrap installed (~10 minutes:
the figure build_run_plan already allows for, 45 minutes at most)."""
DEFAULT_MAX_COST_USD = 5.0
"""Budget guard default: ~20x the estimate of a full 90k-image Fruits-360 run on the default
cluster (1 + 2 m5.xlarge, Keras), so it refuses only runs sized far beyond the usual."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class PipelineConfig:
    """Deployment settings: where things live in AWS and on the local machine."""

    aws_conn_id: str = "aws_default"
    region: str = DEFAULT_REGION
    bucket: str = "fruits-features-bucket"
    prefix: str = "fruits"
    emr_log_uri: str = ""
    emr_service_role: str = "EMR_DefaultRole"
    emr_instance_profile: str = "EMR_EC2_DefaultRole"
    subnet_id: str = ""
    extra_tags: dict[str, str] = field(default_factory=dict)
    data_dir: Path = REPO_ROOT / "data" / "fruits-360-sample"
    results_dir: Path = REPO_ROOT / "data" / "results"
    cluster_ttl_hours: int = 6
    dataset_uri: str = ""

    def __post_init__(self) -> None:
        if self.region not in ALLOWED_REGIONS:
            raise ValueError(
                f"region {self.region!r} is not allowed; use one of {', '.join(ALLOWED_REGIONS)} "
                "(EU only by default)"
            )
        if self.cluster_ttl_hours <= 0:
            raise ValueError("FRUITS_CLUSTER_TTL_HOURS must be a positive number of hours")

    @property
    def s3_base(self) -> str:
        """``s3://bucket/prefix`` without a trailing slash."""
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"

    @property
    def log_uri(self) -> str:
        """Where EMR writes cluster and step logs (stderr of failed steps is read from here)."""
        return self.emr_log_uri or f"{self.s3_base}/logs/emr/"


def _parse_tags(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"FRUITS_EXTRA_TAGS items must look like key=value, got {item!r}")
        tags[key.strip()] = value.strip()
    return tags


def load_config() -> PipelineConfig:
    """Read the configuration from the environment. Call it inside tasks, not at parse time."""
    return PipelineConfig(
        aws_conn_id=_env("FRUITS_AWS_CONN_ID", "aws_default"),
        region=_env("FRUITS_REGION", DEFAULT_REGION),
        bucket=_env("FRUITS_BUCKET", "fruits-features-bucket"),
        prefix=_env("FRUITS_PREFIX", "fruits"),
        emr_log_uri=_env("FRUITS_EMR_LOG_URI", ""),
        emr_service_role=_env("FRUITS_EMR_SERVICE_ROLE", "EMR_DefaultRole"),
        emr_instance_profile=_env("FRUITS_EMR_INSTANCE_PROFILE", "EMR_EC2_DefaultRole"),
        subnet_id=_env("FRUITS_SUBNET_ID", ""),
        extra_tags=_parse_tags(os.environ.get("FRUITS_EXTRA_TAGS", "")),
        data_dir=Path(_env("FRUITS_DATA_DIR", str(REPO_ROOT / "data" / "fruits-360-sample"))),
        results_dir=Path(_env("FRUITS_RESULTS_DIR", str(REPO_ROOT / "data" / "results"))),
        cluster_ttl_hours=_env_int("FRUITS_CLUSTER_TTL_HOURS", 6),
        dataset_uri=_env("FRUITS_DATASET_URI", ""),
    )


def emr_schedule() -> str | None:
    """Schedule of the EMR DAG (cron or preset), or None for manual triggers only."""
    return os.environ.get("FRUITS_EMR_SCHEDULE", "").strip() or None


def sweeper_schedule() -> str:
    """Schedule of the orphan-cluster sweeper."""
    return os.environ.get("FRUITS_SWEEPER_SCHEDULE", "").strip() or "@hourly"
