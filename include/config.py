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

DEFAULT_SERVICE_ROLE = f"{PROJECT_TAG}-emr-service"
DEFAULT_INSTANCE_ROLE = f"{PROJECT_TAG}-emr-ec2"
DEFAULT_SERVERLESS_JOB_ROLE = f"{PROJECT_TAG}-emr-serverless-job"
"""Role names ``python -m include.infra create-roles`` makes, and the config's defaults
(the Serverless one is the job runs' ``executionRoleArn``).

Project-specific on purpose: the account's ``EMR_DefaultRole``/``EMR_EC2_DefaultRole`` may
serve other workloads (and may carry the v1 policy); the pipeline uses the roles it made.
"""

EMR_MANAGED_POLICY_TAG = "for-use-with-amazon-emr-managed-policies"
"""Tag the v2 managed policies need: ``key = "true"`` on the cluster, its subnet and its SGs.

``AmazonEMRServicePolicy_v2`` (which ``create-roles`` attaches) allows ``ec2:RunInstances``
and ``ec2:CreateNetworkInterface`` only on subnets and security groups tagged with it
(statement ``CreateInTaggedNetwork``), and expects it on the cluster, which EMR propagates to
what it creates (AWS Managed Policy reference: AmazonEMRServicePolicy_v2; EMR Management
Guide: "IAM managed policy for full access (v2 managed default policy)").
"""

EMR_RETRY_DELAY = timedelta(minutes=2)
"""``retry_delay`` of the EMR DAG's tasks: a failed add-step waits this long to try again."""

CREATE_WAIT_SECONDS = 45 * 60
"""How long the create task waits for a cluster: ~10 minutes are normal, 45 the bound."""

FULL_STEP_TIMEOUT_SECONDS = 6 * 60 * 60
"""Default step timeout of a full run (~90k images can take hours on a small cluster)."""

SWEEPER_TTL_MARGIN_SECONDS = 60 * 60


def default_cluster_ttl_hours() -> int:
    """The sweeper's default TTL: longer than the longest run the Params allow by default.

    Create wait + full-mode step timeout + a margin for retries and terminate, rounded up to
    whole hours: a cluster of a run that is still within its own limits is never "stale".
    """
    seconds = CREATE_WAIT_SECONDS + FULL_STEP_TIMEOUT_SECONDS + SWEEPER_TTL_MARGIN_SECONDS
    return -(-seconds // 3600)


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

# Hourly on-demand prices in eu-west-1 (PRICE_TABLE_REGION), USD: (EC2, EMR uplift). An
# *estimate* for the report and the status command, checked against the public price pages in
# 2026 (not re-checked since); other regions: REGION_PRICES below. Real bills depend on spot
# prices, EBS and data transfer.
PRICE_TABLE_USD_PER_HOUR: dict[str, tuple[float, float]] = {
    "m5.xlarge": (0.214, 0.048),
    "m5.2xlarge": (0.428, 0.096),
    "m5.4xlarge": (0.856, 0.192),
    "m6i.xlarge": (0.214, 0.048),
    "m6i.2xlarge": (0.428, 0.096),
    "c5.2xlarge": (0.384, 0.085),
    "c6i.2xlarge": (0.384, 0.085),
    "r5.xlarge": (0.282, 0.063),
    # Graviton (aarch64; the litert and onnx runtimes have aarch64 wheels, Keras's
    # tensorflow-cpu has none). DERIVED, not read off the eu-west-1 price page (it could
    # not be reached): m5's eu-west-1 figures x AWS's us-east-1 on-demand ratios,
    # m6g/m5 = 0.154/0.192 = 0.80 and m7g/m5 = 0.1632/0.192 = 0.85. Check them against the
    # AWS Price List API (AmazonEC2, ElasticMapReduce) before relying on them.
    "m6g.xlarge": (0.171, 0.038),
    "m6g.2xlarge": (0.342, 0.077),
    "m7g.xlarge": (0.182, 0.041),
    "m7g.2xlarge": (0.364, 0.082),
}
ALLOWED_INSTANCE_TYPES: tuple[str, ...] = tuple(PRICE_TABLE_USD_PER_HOUR)


# Featurisation throughput per vCPU, images/s, by model runtime (the job's ``--runtime``).
# Measured 2026-12-02 on a 2-core AMD EPYC dev machine with AVX2/FMA and no AVX-512
# (../shared/FIELD-NOTES.md, "Measured 2026-12-02"): MobileNetV2 224 px, batch 64, one
# thread per process, 2 processes: ai-edge-litert 176 images/s, ONNX Runtime 177; Keras 3
# predict_on_batch 25-27 per core. The slower machine's figures on purpose (on an AVX-512
# one, benchmarks/featurize.py measured the Spark job at 107 (litert) / 53 (keras) per
# core): EMR's vCPUs are hyperthreads. The budget guard's estimate, not a promise.
THROUGHPUT_IMAGES_PER_S_PER_VCPU: dict[str, float] = {
    "litert": 88.0,
    "onnx": 88.0,
    "keras": 25.0,
}
DEFAULT_RUNTIME = "litert"
"""The runtime assumed when the job settings name none (= the job's default)."""
CLUSTER_START_BOOTSTRAP_S = 600
"""Seconds from RunJobFlow to a WAITING cluster with the bootstrap installed (~10 minutes:
the figure build_run_plan already allows for, 45 minutes at most)."""
DEFAULT_MAX_COST_USD = 5.0
"""Budget guard default: ~20x the estimate of a full 90k-image Fruits-360 run on the default
cluster (1 + 2 m5.xlarge, Keras), so it refuses only runs sized far beyond the usual."""


# ---- Prices by region. Nothing can be downloaded on the build machine and the `search` tool
# found no AWS price page with these figures (2026-12-07): only the figures marked "checked"
# were read off AWS's pages, by the project, earlier in 2026; every "ASSUMED" one is derived,
# not checked. Check them against the AWS Price List API (services AmazonEC2 and
# ElasticMapReduce) before relying on them.
PRICE_TABLE_REGION = "eu-west-1"
"""The region of PRICE_TABLE_USD_PER_HOUR's figures."""
PRICE_FALLBACK_REGION = "eu-west-1"
"""A region without figures is estimated with this region's, and a warning says so."""


@dataclass(frozen=True)
class RegionPrices:
    """How one region's prices are had: its m5.xlarge EC2 on-demand price (USD/hour, Linux),
    whose ratio to another region's scales that region's figures, and where it comes from."""

    m5_xlarge_usd: float
    source: str


REGION_PRICES: dict[str, RegionPrices] = {
    "us-east-1": RegionPrices(
        0.192, "ASSUMED: m5.xlarge as the project knew it (the EMR Serverless figures' region)"
    ),
    "eu-west-1": RegionPrices(
        0.214, "checked: the eu-west-1 EC2/EMR price pages, by the project, 2026 (not re-checked)"
    ),
    "eu-west-2": RegionPrices(0.222, "ASSUMED: eu-west-1's x m5.xlarge 0.222/0.214 (London)"),
    "eu-west-3": RegionPrices(0.224, "ASSUMED: eu-west-1's x m5.xlarge 0.224/0.214 (Paris)"),
    "eu-central-1": RegionPrices(0.230, "ASSUMED: eu-west-1's x m5.xlarge 0.230/0.214 (Frankfurt)"),
    "eu-north-1": RegionPrices(0.204, "ASSUMED: eu-west-1's x m5.xlarge 0.204/0.214 (Stockholm)"),
    "eu-south-1": RegionPrices(0.224, "ASSUMED: eu-west-1's x m5.xlarge 0.224/0.214 (Milan)"),
}
"""Every allowed region (and us-east-1): cluster prices = PRICE_TABLE_USD_PER_HOUR x this
region's m5.xlarge / eu-west-1's, EC2 and EMR uplift alike (an assumption: AWS sets each
region's prices per instance type)."""

# EMR Serverless, USD per hour of what a job run's workers hold: (per vCPU, per GB of memory,
# per GB of ephemeral storage beyond the free SERVERLESS_FREE_STORAGE_GB per worker), by
# architecture (the application's X86_64 | ARM64). The us-east-1 figures are AWS's published
# EMR Serverless on-demand prices (aws.amazon.com/emr/pricing, "Amazon EMR Serverless") as the
# project knew them in 2026 (not re-checked); every other region's are ASSUMED: us-east-1's x
# the region's m5.xlarge / us-east-1's (REGION_PRICES), not checked.
SERVERLESS_US_EAST_1_USD_PER_HOUR: dict[str, tuple[float, float, float]] = {
    "X86_64": (0.052624, 0.0057785, 0.000111),
    "ARM64": (0.042094, 0.004628, 0.000111),
}


def _scaled(figures: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    vcpu, memory, storage = figures
    return (round(vcpu * factor, 7), round(memory * factor, 7), round(storage * factor, 7))


SERVERLESS_PRICE_TABLE_USD_PER_HOUR: dict[str, dict[str, tuple[float, float, float]]] = {
    region: {
        arch: _scaled(figures, prices.m5_xlarge_usd / REGION_PRICES["us-east-1"].m5_xlarge_usd)
        for arch, figures in SERVERLESS_US_EAST_1_USD_PER_HOUR.items()
    }
    for region, prices in REGION_PRICES.items()
}
SERVERLESS_PRICE_SOURCES: dict[str, str] = {
    region: (
        "AWS's published us-east-1 figures as the project knew them, 2026 (not re-checked)"
        if region == "us-east-1"
        else f"ASSUMED: us-east-1's x m5.xlarge {prices.m5_xlarge_usd}/"
        f"{REGION_PRICES['us-east-1'].m5_xlarge_usd} ({region}), not checked"
    )
    for region, prices in REGION_PRICES.items()
}
SERVERLESS_FREE_STORAGE_GB = 20
"""Ephemeral storage per worker that EMR Serverless does not bill (20 GB)."""
SERVERLESS_START_S = 120
"""Seconds from StartJobRun to running executors (application start + worker start, ~1-2
minutes without pre-initialised capacity): the budget estimate's start time."""


@dataclass(frozen=True)
class InstanceType:
    """What the executor sizing needs to know of a node (include/emr/sizing.py)."""

    vcpus: int
    memory_gib: int
    yarn_memory_mb: int
    """EMR's default ``yarn.nodemanager.resource.memory-mb`` (= maximum-allocation-mb)."""
    arch: str  # "x86_64" | "aarch64"


# vCPUs and memory: EC2 User Guide (instance type tables). YARN memory: EMR Release Guide,
# "Task configuration" (emr-hadoop-task-config), default values for the latest release,
# without HBase; yarn.scheduler.maximum-allocation-mb equals it for every type here.
INSTANCE_TYPES: dict[str, InstanceType] = {
    "m5.xlarge": InstanceType(4, 16, 12288, "x86_64"),
    "m5.2xlarge": InstanceType(8, 32, 24576, "x86_64"),
    "m5.4xlarge": InstanceType(16, 64, 57344, "x86_64"),
    "m6i.xlarge": InstanceType(4, 16, 11712, "x86_64"),
    "m6i.2xlarge": InstanceType(8, 32, 23424, "x86_64"),
    "c5.2xlarge": InstanceType(8, 16, 12288, "x86_64"),
    "c6i.2xlarge": InstanceType(8, 16, 11712, "x86_64"),
    "r5.xlarge": InstanceType(4, 32, 24576, "x86_64"),
    "m6g.xlarge": InstanceType(4, 16, 11712, "aarch64"),
    "m6g.2xlarge": InstanceType(8, 32, 23424, "aarch64"),
    "m7g.xlarge": InstanceType(4, 16, 11712, "aarch64"),
    "m7g.2xlarge": InstanceType(8, 32, 23424, "aarch64"),
}

INSTANCE_VCPUS: dict[str, int] = {name: node.vcpus for name, node in INSTANCE_TYPES.items()}
"""vCPUs per instance type; YARN offers all of them to executors (include/emr/sizing.py)."""

RUNTIME_ARCHES: dict[str, tuple[str, ...]] = {
    "litert": ("x86_64", "aarch64"),
    "onnx": ("x86_64", "aarch64"),
    "keras": ("x86_64",),  # tensorflow-cpu 2.21 has no aarch64 wheel
}
"""CPU architectures each model runtime's node requirements have wheels for."""

# Peak RSS of one Spark Python worker of the UDF, MB = fixed + per image of a batch at
# 224 px (scales with the pixel count). Measured with each runtime's predictor, pandas and
# pyarrow imported, one thread, after 3 batches (batch 16 and 64 solved for the two terms;
# 2026-12-02, 2-core AMD EPYC, Python 3.11): litert 271/657 MB, onnx 374/1000 MB,
# keras 945/1733 MB. See README "Executor sizing".
PYTHON_WORKER_MEMORY_MB: dict[str, tuple[float, float]] = {
    "litert": (143.0, 8.0),
    "onnx": (166.0, 13.0),
    "keras": (682.0, 16.4),
}


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
    emr_service_role: str = DEFAULT_SERVICE_ROLE
    emr_instance_profile: str = DEFAULT_INSTANCE_ROLE
    serverless_job_role: str = DEFAULT_SERVERLESS_JOB_ROLE
    """EMR Serverless: the job runtime role (name, or full ARN) of the job runs."""
    subnet_id: str = ""
    emr_security_configuration: str = ""
    """EMR security configuration the clusters name (``create-security-configuration``);
    empty: none (default; see docs/infra.md)."""
    extra_tags: dict[str, str] = field(default_factory=dict)
    data_dir: Path = REPO_ROOT / "data" / "fruits-360-sample"
    results_dir: Path = REPO_ROOT / "data" / "results"
    cluster_ttl_hours: int = field(default_factory=default_cluster_ttl_hours)
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
    def serverless_log_uri(self) -> str:
        """Where EMR Serverless writes job runs' logs (``s3MonitoringConfiguration``)."""
        return f"{self.s3_base}/logs/emr-serverless/"

    @property
    def feature_cache_uri(self) -> str:
        """The EMR job's feature cache (``spark_jobs/feature_cache.py``), under the project
        prefix (the instance profile's policy covers it)."""
        return f"{self.s3_base}/feature-cache/"

    @property
    def local_feature_cache(self) -> Path:
        """The local job's feature cache: ``<results>/_feature_cache/`` (beside the runs)."""
        return self.results_dir / "_feature_cache"

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
        emr_service_role=_env("FRUITS_EMR_SERVICE_ROLE", DEFAULT_SERVICE_ROLE),
        emr_instance_profile=_env("FRUITS_EMR_INSTANCE_PROFILE", DEFAULT_INSTANCE_ROLE),
        serverless_job_role=_env("FRUITS_SERVERLESS_JOB_ROLE", DEFAULT_SERVERLESS_JOB_ROLE),
        subnet_id=_env("FRUITS_SUBNET_ID", ""),
        emr_security_configuration=_env("FRUITS_EMR_SECURITY_CONFIGURATION", ""),
        extra_tags=_parse_tags(os.environ.get("FRUITS_EXTRA_TAGS", "")),
        data_dir=Path(_env("FRUITS_DATA_DIR", str(REPO_ROOT / "data" / "fruits-360-sample"))),
        results_dir=Path(_env("FRUITS_RESULTS_DIR", str(REPO_ROOT / "data" / "results"))),
        cluster_ttl_hours=_env_int("FRUITS_CLUSTER_TTL_HOURS", default_cluster_ttl_hours()),
        dataset_uri=_env("FRUITS_DATASET_URI", ""),
    )


def serverless_local_python_allowed() -> bool:
    """May the Serverless DAG ship *this machine's* Python (``FRUITS_SERVERLESS_LOCAL_PYTHON``,
    default off)?

    Such an environment runs here and in the EMR emulator, not on EMR Serverless (its glibc
    and library paths are this machine's): only the emulator's settings (``make airflow``,
    docker-compose) turn it on. Off, a build without a portable CPython fails, saying how to
    provide one, and nothing is uploaded.
    """
    raw = os.environ.get("FRUITS_SERVERLESS_LOCAL_PYTHON", "false").strip().lower()
    return raw in ("1", "true", "yes")


def wheelhouse_default() -> bool:
    """Default of the EMR DAG's ``wheelhouse`` Param (``FRUITS_WHEELHOUSE``, default on).

    Off where nothing installs on the nodes and PyPI may be out of reach: the EMR emulator
    (``make run-emr``, ``make airflow``, docker-compose set ``FRUITS_WHEELHOUSE=false``).
    """
    return os.environ.get("FRUITS_WHEELHOUSE", "true").strip().lower() not in ("0", "false", "no")


def emr_schedule() -> str | None:
    """Schedule of the EMR DAG (cron or preset), or None for manual triggers only."""
    return os.environ.get("FRUITS_EMR_SCHEDULE", "").strip() or None


def sweeper_schedule() -> str:
    """Schedule of the orphan-cluster sweeper."""
    return os.environ.get("FRUITS_SWEEPER_SCHEDULE", "").strip() or "@hourly"


def serverless_schedule() -> str | None:
    """Schedule of the EMR Serverless DAG (cron or preset), or None for manual triggers only."""
    return os.environ.get("FRUITS_EMR_SERVERLESS_SCHEDULE", "").strip() or None
