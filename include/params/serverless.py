"""Trigger-time options of ``fruits_emr_serverless_pipeline``, as typed Airflow ``Param``s.

What the job computes, the guards, the dataset and the release are the cluster DAG's own
Params (:mod:`include.params.common`, the same objects' definitions); this module adds the
EMR Serverless ones: the workers (vCPU and memory per driver/executor, within AWS's allowed
sizes, :mod:`include.capacity.serverless_sizing`), the executor count (which fixes the
application's ``maximumCapacity``), the architecture, the idle auto-stop, whether to reuse
a shared application, and the waits. :func:`serverless_settings_from_params` checks what a
schema cannot and raises ``ValueError`` naming the Param.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param

from include.capacity.serverless_sizing import (
    ARCHITECTURES,
    WORKER_DISK_GB,
    WORKER_MEMORY_GB,
    ServerlessSizing,
    check_architecture,
    size_serverless_workers,
)
from include.params.cluster import emr_params
from include.params.common import (
    MAX_IDLE_TIMEOUT_MINUTES,
    RELEASE_LABEL_PATTERN,
    _check_bool,
    _check_int,
    _get,
    check_idle_and_dataset_dir,
    check_poll_and_timeout,
    guard_params,
    guard_settings_from_params,
    job_params,
    job_settings_from_params,
    s3_dataset_params,
)
from include.params.defaults import (
    DEFAULT_RELEASE_LABEL,
    POKE_INTERVAL_BY_MODE,
    STEP_TIMEOUT_BY_MODE,
)
from include.params.job_args import JobSettings

MAX_EXECUTORS = 50
DEFAULT_JOB_LOG_WAIT_SECONDS = 120
"""EMR Serverless uploads a job run's driver logs to the log URI while and after it runs."""
MAX_JOB_LOG_WAIT_SECONDS = 30 * 60
SHARED_WITH_CLUSTER_DAG = ("release_label", "dataset_dir", "pack_dataset", "download_features")
"""Params defined once in ``include.params.cluster.emr_params`` and used by both EMR DAGs."""


def _worker_params(role: str, vcpu: int, memory_gb: int, what: str) -> dict[str, Param]:
    return {
        f"{role}_vcpu": Param(
            vcpu,
            type="integer",
            enum=list(WORKER_MEMORY_GB),
            title=f"{role.capitalize()} vCPU",
            description=f"vCPU of the {what} worker (EMR Serverless: 1, 2, 4, 8 or 16).",
        ),
        f"{role}_memory_gb": Param(
            memory_gb,
            type="integer",
            minimum=min(low for low, _, _ in WORKER_MEMORY_GB.values()),
            maximum=max(high for _, high, _ in WORKER_MEMORY_GB.values()),
            title=f"{role.capitalize()} memory (GB)",
            description=f"Memory of the {what} worker, heap + overhead: "
            + "; ".join(
                f"{v} vCPU {low}-{high} GB (step {step})"
                for v, (low, high, step) in WORKER_MEMORY_GB.items()
            )
            + ".",
        ),
    }


def serverless_params() -> dict[str, Param]:
    """Every Param of the Serverless DAG (a new dict each call)."""
    params = job_params()
    params.update(guard_params(emr=True))
    params["max_cost_usd"] = Param(
        params["max_cost_usd"].value,
        type="number",
        exclusiveMinimum=0,
        title="Budget (USD)",
        description="Refuse the run before anything is created when its estimated cost "
        "(images / runtime throughput + worker start + one poll, at the EMR Serverless "
        "price table's per vCPU-hour and GB-hour prices) is higher.",
    )
    params.update(s3_dataset_params())
    cluster = emr_params()
    params.update({name: cluster[name] for name in SHARED_WITH_CLUSTER_DAG})
    params.update(
        {
            "architecture": Param(
                "X86_64",
                type="string",
                enum=list(ARCHITECTURES),
                title="Architecture",
                description="CPU of the application's workers. ARM64 (Graviton) is ~20% "
                "cheaper per vCPU-hour; the keras runtime has no ARM64 wheels.",
            ),
            "executors": Param(
                2,
                type="integer",
                minimum=1,
                maximum=MAX_EXECUTORS,
                title="Executors",
                description="Executor workers of the job run (fixed, no dynamic allocation). "
                "With the driver they are the application's maximumCapacity: a run cannot "
                "scale past them.",
            ),
            **_worker_params("executor", 4, 16, "each executor's"),
            **_worker_params("driver", 2, 8, "driver's"),
            "worker_disk_gb": Param(
                WORKER_DISK_GB[0],
                type="integer",
                minimum=WORKER_DISK_GB[0],
                maximum=WORKER_DISK_GB[1],
                title="Disk per worker (GB)",
                description="Ephemeral storage of every worker; 20 GB are free, more is billed.",
            ),
            "idle_timeout_minutes": Param(
                15,
                type="integer",
                minimum=1,
                maximum=MAX_IDLE_TIMEOUT_MINUTES,
                title="Idle auto-stop (minutes)",
                description="EMR Serverless stops the application itself after this long "
                "without job runs: the backstop if Airflow never reaches the teardown. A "
                "stopped application costs nothing; a job run starts it again.",
            ),
            "reuse_application": Param(
                False,
                type="boolean",
                title="Reuse a shared application",
                description="Off: the run creates its own application and deletes it at "
                "the end. On: use (or create) the project's shared application with this "
                "same configuration, found by name and tags; the run stops it at the end "
                "but never deletes it (the sweeper deletes long-idle ones).",
            ),
            "deferrable": Param(
                False,
                type="boolean",
                title="Deferrable wait",
                description="Wait for the job run in the triggerer instead of a worker slot.",
            ),
            "poke_interval_seconds": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Job run poll interval (s)",
                description="How often to check the job run. Empty = by mode "
                f"(mini {POKE_INTERVAL_BY_MODE['mini']} s, "
                f"full {POKE_INTERVAL_BY_MODE['full']} s).",
            ),
            "job_timeout_seconds": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Job run timeout (s)",
                description="Fail (and cancel the job run) when it runs longer; also the job "
                "run's own executionTimeoutMinutes, so EMR Serverless cancels it even if "
                f"Airflow is gone. Empty = by mode (mini {STEP_TIMEOUT_BY_MODE['mini']} s, "
                f"full {STEP_TIMEOUT_BY_MODE['full']} s).",
            ),
            "job_log_wait_seconds": Param(
                DEFAULT_JOB_LOG_WAIT_SECONDS,
                type="integer",
                minimum=0,
                maximum=MAX_JOB_LOG_WAIT_SECONDS,
                title="Wait for a failed job run's log (s)",
                description="After a job run fails, wait up to this long for its driver's "
                "stderr.gz to reach S3 to show its tail. 0 = don't wait.",
            ),
        }
    )
    return params


@dataclass(frozen=True)
class ServerlessSettings:
    """Application, workers and orchestration of one Serverless run (validated)."""

    job: JobSettings
    release_label: str
    architecture: str
    sizing: ServerlessSizing
    idle_timeout_minutes: int
    reuse_application: bool
    dataset_dir: str | None
    pack_dataset: bool
    download_features: bool
    deferrable: bool
    poke_interval_seconds: int
    job_timeout_seconds: int
    job_log_wait_seconds: int
    feature_cache: bool = True
    """Give the job ``<s3 base>/feature-cache/`` (the ``feature_cache`` guard Param)."""


def _int(params: Mapping[str, Any], name: str, defaults: Mapping[str, Param]) -> int:
    value = _check_int(name, _get(params, name, defaults))
    assert value is not None
    return value


def serverless_settings_from_params(params: Mapping[str, Any]) -> ServerlessSettings:
    """Turn (possibly partial) Params into validated ``ServerlessSettings``.

    Raises ``ValueError`` with a clear message naming the bad Param.
    """
    job = job_settings_from_params(params)
    defaults = serverless_params()
    release_label = _get(params, "release_label", defaults)
    if not isinstance(release_label, str) or not re.fullmatch(RELEASE_LABEL_PATTERN, release_label):
        raise ValueError(
            f"release_label must be an emr-7.x label such as {DEFAULT_RELEASE_LABEL!r}, "
            f"got {release_label!r}"
        )
    architecture = _get(params, "architecture", defaults)
    check_architecture(architecture, job.runtime)
    executors = _int(params, "executors", defaults)
    if not 1 <= executors <= MAX_EXECUTORS:
        raise ValueError(f"executors must be between 1 and {MAX_EXECUTORS}, got {executors}")
    sizing = size_serverless_workers(
        runtime=job.runtime,
        batch_size=job.batch_size,
        image_size=job.image_size,
        executors=executors,
        executor_vcpu=_int(params, "executor_vcpu", defaults),
        executor_memory_gb=_int(params, "executor_memory_gb", defaults),
        driver_vcpu=_int(params, "driver_vcpu", defaults),
        driver_memory_gb=_int(params, "driver_memory_gb", defaults),
        disk_gb=_int(params, "worker_disk_gb", defaults),
    )
    idle, dataset_dir = check_idle_and_dataset_dir(params, defaults)
    poke, timeout = check_poll_and_timeout(params, defaults, timeout_name="job_timeout_seconds")
    log_wait = _int(params, "job_log_wait_seconds", defaults)
    if not 0 <= log_wait <= MAX_JOB_LOG_WAIT_SECONDS:
        raise ValueError(
            f"job_log_wait_seconds must be between 0 and {MAX_JOB_LOG_WAIT_SECONDS}, got {log_wait}"
        )
    return ServerlessSettings(
        job=job,
        release_label=release_label,
        architecture=architecture,
        sizing=sizing,
        idle_timeout_minutes=idle,
        reuse_application=_check_bool(
            "reuse_application", _get(params, "reuse_application", defaults)
        ),
        dataset_dir=(dataset_dir or "").strip() or None,
        pack_dataset=_check_bool("pack_dataset", _get(params, "pack_dataset", defaults)),
        download_features=_check_bool(
            "download_features", _get(params, "download_features", defaults)
        ),
        deferrable=_check_bool("deferrable", _get(params, "deferrable", defaults)),
        poke_interval_seconds=poke or POKE_INTERVAL_BY_MODE[job.mode],
        job_timeout_seconds=timeout or STEP_TIMEOUT_BY_MODE[job.mode],
        job_log_wait_seconds=log_wait,
        feature_cache=guard_settings_from_params(params, emr=True).feature_cache,
    )
