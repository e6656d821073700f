"""The EMR cluster DAG's Params (``emr_params``) and their checks (``emr_settings_from_params``).

``emr_params()`` adds the cluster options to the shared job, guard and dataset Params of
:mod:`include.params.common`; ``emr_settings_from_params`` checks what a JSON schema cannot
(idle timeout vs poll interval, executor sizing) and raises ``ValueError`` with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param

from include.capacity.cluster_sizing import size_executors
from include.capacity.prices import ALLOWED_INSTANCE_TYPES
from include.config import wheelhouse_default
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
    EMR_RETRY_DELAY,
    POKE_INTERVAL_BY_MODE,
    STEP_TIMEOUT_BY_MODE,
)
from include.params.job_args import JobSettings

MAX_CORE_NODES = 20


DEFAULT_STEP_LOG_WAIT_SECONDS = 7 * 60
"""EMR archives logs to S3 every five minutes: 7 minutes cover one upload plus slack."""


MAX_STEP_LOG_WAIT_SECONDS = 30 * 60


SCHEDULING_MARGIN_SECONDS = 60
"""Scheduler/worker latency between the create task ending and the add-step task running."""


def min_idle_timeout_seconds(poke_interval_seconds: int) -> int:
    """The shortest idle timeout that cannot end a healthy cluster before its step arrives.

    Between the cluster becoming WAITING (idle) and the step being added lie: up to one
    poke of the create waiter, the scheduling latency, and one retry delay when the
    add-step task fails once. A shorter AutoTerminationPolicy terminates the cluster first.
    """
    return poke_interval_seconds + SCHEDULING_MARGIN_SECONDS + int(EMR_RETRY_DELAY.total_seconds())


def emr_params() -> dict[str, Param]:
    """``job_params()`` plus the cluster, orchestration and guard options of the EMR DAG."""
    params = job_params()
    params.update(guard_params(emr=True))
    params.update(s3_dataset_params())
    params.update(
        {
            "pack_s3_dataset": Param(
                False,
                type="boolean",
                title="Pack the S3 dataset on the cluster",
                description="With an images-layout dataset_uri: a first Spark step packs it "
                "into parquet shards on the cluster (never on the Airflow worker), once per "
                "listing; later runs of the same listing read those shards.",
            ),
            "instance_type": Param(
                ALLOWED_INSTANCE_TYPES[0],
                type="string",
                enum=list(ALLOWED_INSTANCE_TYPES),
                title="Instance type",
                description="EC2 type of the master and core nodes (allow-list with known prices).",
            ),
            "core_nodes": Param(
                2,
                type="integer",
                minimum=1,
                maximum=MAX_CORE_NODES,
                title="Core nodes",
                description=f"Number of core (worker) nodes, 1..{MAX_CORE_NODES}.",
            ),
            "spot_core_nodes": Param(
                False,
                type="boolean",
                title="Spot core nodes",
                description="Run core nodes on the spot market (cheaper, may be reclaimed). "
                "The master is always on-demand.",
            ),
            "release_label": Param(
                DEFAULT_RELEASE_LABEL,
                type="string",
                pattern=RELEASE_LABEL_PATTERN,
                title="EMR release",
                description="An emr-7.x release label (Spark 3.5, Python 3.11).",
            ),
            "idle_timeout_minutes": Param(
                30,
                type="integer",
                minimum=1,
                maximum=MAX_IDLE_TIMEOUT_MINUTES,
                title="Idle auto-termination (minutes)",
                description="EMR terminates the cluster itself after this long without work: "
                "a cost backstop if Airflow never reaches the terminate task. Must exceed "
                "the create-to-add-step time (poll interval + retry delay + 1 min).",
            ),
            "dataset_dir": Param(
                None,
                type=["null", "string"],
                title="Local dataset folder",
                description="Fruits-360-style folder (<split>/<Label>/<image>) to upload. "
                "Empty = FRUITS_DATA_DIR from the configuration.",
            ),
            "pack_dataset": Param(
                True,
                type="boolean",
                title="Pack images into parquet shards",
                description="Upload a few large parquet shards instead of one object per "
                "image (reading ~22k small objects from S3 dominates a run otherwise).",
            ),
            "wheelhouse": Param(
                wheelhouse_default(),
                type="boolean",
                title="Install from a wheelhouse in S3",
                description="Stage the nodes' wheels (every pin fixed) in S3 once and install "
                "them with --no-index: no PyPI needed on the nodes (private subnets). "
                "Off = the nodes pip-install from PyPI.",
            ),
            "download_features": Param(
                False,
                type="boolean",
                title="Download features",
                description="Also download the 1280-d features parquet (metrics and PCA "
                "are always downloaded).",
            ),
            "deferrable": Param(
                False,
                type="boolean",
                title="Deferrable waits",
                description="Wait for the cluster and the step in the triggerer instead of "
                "holding a worker slot.",
            ),
            "poke_interval_seconds": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Step poll interval (s)",
                description="How often to check the Spark step. Empty = by mode "
                f"(mini {POKE_INTERVAL_BY_MODE['mini']} s, "
                f"full {POKE_INTERVAL_BY_MODE['full']} s).",
            ),
            "step_timeout_seconds": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Step timeout (s)",
                description="Fail (and terminate the cluster) when the step runs longer. "
                f"Empty = by mode (mini {STEP_TIMEOUT_BY_MODE['mini']} s, "
                f"full {STEP_TIMEOUT_BY_MODE['full']} s).",
            ),
            "step_log_wait_seconds": Param(
                DEFAULT_STEP_LOG_WAIT_SECONDS,
                type="integer",
                minimum=0,
                maximum=MAX_STEP_LOG_WAIT_SECONDS,
                title="Wait for a failed step's log (s)",
                description="After a step fails, wait up to this long for its stderr.gz to "
                "reach S3 (EMR uploads logs every ~5 minutes) to show its tail. 0 = don't wait.",
            ),
        }
    )
    return params


@dataclass(frozen=True)
class EmrSettings:
    """Cluster and orchestration settings of one EMR run (validated)."""

    job: JobSettings
    instance_type: str
    core_nodes: int
    spot_core_nodes: bool
    release_label: str
    idle_timeout_minutes: int
    dataset_dir: str | None
    pack_dataset: bool
    download_features: bool
    deferrable: bool
    poke_interval_seconds: int
    step_timeout_seconds: int
    step_log_wait_seconds: int = DEFAULT_STEP_LOG_WAIT_SECONDS
    wheelhouse: bool = True
    feature_cache: bool = True
    """Give the job ``<s3 base>/feature-cache/`` (the ``feature_cache`` guard Param)."""


def emr_settings_from_params(params: Mapping[str, Any]) -> EmrSettings:
    """Turn (possibly partial) Params into validated ``EmrSettings``.

    Raises ``ValueError`` with a clear message naming the bad Param.
    """
    job = job_settings_from_params(params)
    defaults = emr_params()
    instance_type = _get(params, "instance_type", defaults)
    if instance_type not in ALLOWED_INSTANCE_TYPES:
        raise ValueError(
            f"instance_type {instance_type!r} is not allowed; use one of "
            f"{', '.join(ALLOWED_INSTANCE_TYPES)}"
        )
    core_nodes = _check_int("core_nodes", _get(params, "core_nodes", defaults))
    assert core_nodes is not None
    if not 1 <= core_nodes <= MAX_CORE_NODES:
        raise ValueError(f"core_nodes must be between 1 and {MAX_CORE_NODES}, got {core_nodes}")
    # The runtime must have wheels for the node's CPU and its workers must fit YARN's memory:
    # refused here, before anything is created (SizingError is a ValueError).
    size_executors(
        instance_type,
        core_nodes,
        runtime=job.runtime,
        batch_size=job.batch_size,
        image_size=job.image_size,
    )
    release_label = _get(params, "release_label", defaults)
    if not isinstance(release_label, str) or not re.fullmatch(RELEASE_LABEL_PATTERN, release_label):
        raise ValueError(
            f"release_label must be an emr-7.x label such as {DEFAULT_RELEASE_LABEL!r}, "
            f"got {release_label!r}"
        )
    idle, dataset_dir = check_idle_and_dataset_dir(params, defaults)
    poke, timeout = check_poll_and_timeout(params, defaults, timeout_name="step_timeout_seconds")
    poke = poke or POKE_INTERVAL_BY_MODE[job.mode]
    shortest = min_idle_timeout_seconds(poke)
    if idle * 60 < shortest:
        raise ValueError(
            f"idle_timeout_minutes={idle} would let EMR terminate the healthy cluster before "
            f"its step is added (up to {shortest} s: poll {poke} s + retry delay "
            f"{int(EMR_RETRY_DELAY.total_seconds())} s + {SCHEDULING_MARGIN_SECONDS} s); "
            f"use at least {-(-shortest // 60)} minutes"
        )
    log_wait = _check_int("step_log_wait_seconds", _get(params, "step_log_wait_seconds", defaults))
    assert log_wait is not None
    if not 0 <= log_wait <= MAX_STEP_LOG_WAIT_SECONDS:
        raise ValueError(
            f"step_log_wait_seconds must be between 0 and {MAX_STEP_LOG_WAIT_SECONDS}, "
            f"got {log_wait}"
        )
    return EmrSettings(
        job=job,
        instance_type=instance_type,
        core_nodes=core_nodes,
        spot_core_nodes=_check_bool("spot_core_nodes", _get(params, "spot_core_nodes", defaults)),
        release_label=release_label,
        idle_timeout_minutes=idle,
        dataset_dir=(dataset_dir or "").strip() or None,
        pack_dataset=_check_bool("pack_dataset", _get(params, "pack_dataset", defaults)),
        download_features=_check_bool(
            "download_features", _get(params, "download_features", defaults)
        ),
        deferrable=_check_bool("deferrable", _get(params, "deferrable", defaults)),
        poke_interval_seconds=poke,
        step_timeout_seconds=timeout or STEP_TIMEOUT_BY_MODE[job.mode],
        step_log_wait_seconds=log_wait,
        wheelhouse=_check_bool("wheelhouse", _get(params, "wheelhouse", defaults)),
        feature_cache=guard_settings_from_params(params, emr=True).feature_cache,
    )


def pack_on_cluster_setting(params: Mapping[str, Any]) -> bool:
    """The ``pack_s3_dataset`` Param (False when absent)."""
    value = params.get("pack_s3_dataset", False)
    if not isinstance(value, bool):
        raise ValueError(f"pack_s3_dataset must be true or false, got {value!r}")
    return value
