"""The one place where the pipeline's configuration lives.

Every setting comes from an environment variable with a safe default, read when
:func:`load_config` is called (inside a task, at run time), never at DAG parse time.
The only parse-time reads are :func:`emr_schedule` and :func:`sweeper_schedule`,
which Airflow needs to build the DAG objects; they read a plain env var, no network.

See docs/configuration.md for the list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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


def weights_default() -> str:
    """Default of the DAGs' ``weights`` Param (``FRUITS_WEIGHTS``, default ``imagenet``).

    ``make airflow`` sets it to what it decided as ``make run`` does (``none`` offline, with
    a warning); docker-compose passes the host's ``FRUITS_WEIGHTS``.
    """
    return os.environ.get("FRUITS_WEIGHTS", "").strip() or "imagenet"


def emr_schedule() -> str | None:
    """Schedule of the EMR DAG (cron or preset), or None for manual triggers only."""
    return os.environ.get("FRUITS_EMR_SCHEDULE", "").strip() or None


def sweeper_schedule() -> str:
    """Schedule of the orphan-cluster sweeper."""
    return os.environ.get("FRUITS_SWEEPER_SCHEDULE", "").strip() or "@hourly"


def serverless_schedule() -> str | None:
    """Schedule of the EMR Serverless DAG (cron or preset), or None for manual triggers only."""
    return os.environ.get("FRUITS_EMR_SERVERLESS_SCHEDULE", "").strip() or None
