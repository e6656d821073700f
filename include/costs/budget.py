"""Budget guard: what a run will cost, estimated before any cluster exists.

The estimate (pure arithmetic, :func:`estimate_run_cost`)::

    featurise_s = images / (throughput per vCPU of the runtime * vCPUs of the core nodes)
    hours       = (cluster start + bootstrap + featurise_s + one poke interval) / 3600
    usd         = hours * (1 master + N core nodes) * hourly price of the instance type

with the throughput figures, vCPU counts, start time and prices of
:mod:`include.costs.throughput`, :mod:`include.capacity.instance_types` and
:mod:`include.capacity.prices` (``THROUGHPUT_IMAGES_PER_S_PER_VCPU``, ``INSTANCE_VCPUS``,
``CLUSTER_START_BOOTSTRAP_S``, ``PRICE_TABLE_USD_PER_HOUR`` scaled to the region,
``REGION_PRICES``; a region without figures is priced as ``PRICE_FALLBACK_REGION``'s, with a
warning, and the estimate records whose figures it used). Spot core nodes are priced at
on-demand, an upper bound as in the report. :func:`check_budget` refuses an estimate over
``max_cost_usd`` with a message giving the estimate and the Param to raise.

:func:`images_to_featurise` turns a dataset summary and the job settings into the number of
images the job will featurise (the mini-mode sample, or every image). With the feature
cache on, images featurised by an earlier run are reused, not featurised: which ones is only
known from their content hashes, on the cluster, so the estimate is then an upper bound.

Task bodies: :func:`check_run_budget` (the ``check_budget`` task of both EMR DAGs: the
cluster's estimate, :func:`emr_check_budget`, or the Serverless one,
:func:`serverless_check_budget`) and :func:`write_estimate` (the estimate beside the results,
for the report).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from include.capacity.instance_types import INSTANCE_VCPUS
from include.capacity.prices import PRICE_TABLE_REGION
from include.costs.cluster import hourly_price, priced_region
from include.costs.throughput import (
    CLUSTER_START_BOOTSTRAP_S,
    DEFAULT_RUNTIME,
    THROUGHPUT_IMAGES_PER_S_PER_VCPU,
)

log = logging.getLogger(__name__)

BUDGET_PARAM = "max_cost_usd"
ESTIMATE_FILE = "cost_estimate.json"


class BudgetExceededError(ValueError):
    """The run's estimated cost is over its budget; nothing has been created."""


@dataclass(frozen=True)
class CostEstimate:
    """An estimated run: the inputs, the seconds by phase, instance-hours and USD."""

    images: int
    runtime: str
    images_per_s_per_vcpu: float
    instance_type: str
    instances: int
    core_vcpus: int
    start_bootstrap_s: float
    featurise_s: float
    poke_interval_s: float
    hours: float
    instance_hours: float
    usd_per_instance_hour: float
    estimated_usd: float
    region: str = PRICE_TABLE_REGION
    priced_as: str = PRICE_TABLE_REGION
    price_source: str = ""
    price_warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the log and the failure message."""
        return (
            f"estimated ${self.estimated_usd:.2f}: {self.images} images / "
            f"({self.images_per_s_per_vcpu:g} images/s per vCPU [{self.runtime}] x "
            f"{self.core_vcpus} core vCPUs) = {self.featurise_s:.0f} s + "
            f"{self.start_bootstrap_s:.0f} s cluster start and bootstrap + "
            f"{self.poke_interval_s:.0f} s poke interval = {self.hours:.3f} h x "
            f"{self.instances} x {self.instance_type} = {self.instance_hours:.3f} "
            f"instance-hours at ${self.usd_per_instance_hour:.3f} ({self.priced_as} prices"
            + (f", for {self.region}: no figures of its own" if self.price_warning else "")
            + ")"
        )


def runtime_of(job: Any) -> str:
    """The model runtime of the job settings (``runtime`` field), else the default."""
    return str(getattr(job, "runtime", None) or DEFAULT_RUNTIME)


def images_to_featurise(
    by_label: Mapping[str, int],
    *,
    mode: str,
    max_images: int | None,
    per_class: int | None,
) -> int:
    """How many images the job featurises: all of them, or the mini sample's size.

    ``by_label`` is the count of non-empty images per label over all splits. The mini
    sample takes at most ``per_class`` per label, then at most ``max_images`` in total.
    """
    if any(n < 0 for n in by_label.values()):
        raise ValueError("image counts must be >= 0")
    if mode == "full":
        return sum(by_label.values())
    per_label = (min(n, per_class) if per_class is not None else n for n in by_label.values())
    total = sum(per_label)
    return min(total, max_images) if max_images is not None else total


def estimate_run_cost(
    *,
    images: int,
    runtime: str,
    instance_type: str,
    core_nodes: int,
    poke_interval_s: float,
    start_bootstrap_s: float = CLUSTER_START_BOOTSTRAP_S,
    throughput: Mapping[str, float] = THROUGHPUT_IMAGES_PER_S_PER_VCPU,
    vcpus: Mapping[str, int] = INSTANCE_VCPUS,
    region: str = PRICE_TABLE_REGION,
) -> CostEstimate:
    """The estimate of the module docstring, priced in ``region``. Raises ValueError for
    unknown names or bad counts (never for a region without prices: see the docstring)."""
    if images < 0:
        raise ValueError(f"images must be >= 0, got {images}")
    if core_nodes < 1:
        raise ValueError(f"core_nodes must be >= 1, got {core_nodes}")
    if poke_interval_s < 0 or start_bootstrap_s < 0:
        raise ValueError("times must be >= 0")
    if runtime not in throughput:
        raise ValueError(
            f"no throughput figure for runtime {runtime!r}; known: {', '.join(sorted(throughput))} "
            "(add it to THROUGHPUT_IMAGES_PER_S_PER_VCPU in include/costs/throughput.py)"
        )
    if instance_type not in vcpus:
        raise ValueError(
            f"no vCPU count for instance type {instance_type!r} "
            "(add it to INSTANCE_VCPUS in include/capacity/instance_types.py)"
        )
    per_vcpu = float(throughput[runtime])
    core_vcpus = vcpus[instance_type] * core_nodes
    featurise_s = images / (per_vcpu * core_vcpus)
    seconds = start_bootstrap_s + featurise_s + poke_interval_s
    hours = seconds / 3600.0
    instances = 1 + core_nodes
    priced = priced_region(region)
    price = hourly_price(instance_type, priced.priced_as)
    return CostEstimate(
        images=images,
        runtime=runtime,
        images_per_s_per_vcpu=per_vcpu,
        instance_type=instance_type,
        instances=instances,
        core_vcpus=core_vcpus,
        start_bootstrap_s=float(start_bootstrap_s),
        featurise_s=featurise_s,
        poke_interval_s=float(poke_interval_s),
        hours=hours,
        instance_hours=hours * instances,
        usd_per_instance_hour=price,
        estimated_usd=hours * instances * price,
        region=priced.region,
        priced_as=priced.priced_as,
        price_source=priced.source,
        price_warning=priced.warning,
    )


def check_budget(estimate: CostEstimate, max_cost_usd: float) -> None:
    """Raise :class:`BudgetExceededError` when the estimate is over ``max_cost_usd``."""
    if estimate.estimated_usd > max_cost_usd:
        raise BudgetExceededError(
            f"the run would cost more than its budget: {estimate.describe()}; the budget is "
            f"${max_cost_usd:.2f}. Raise the Param {BUDGET_PARAM!r} to at least "
            f"{estimate.estimated_usd:.2f} to run it (or use fewer images / nodes)."
        )


def labels_count(dataset: Mapping[str, Any]) -> dict[str, int]:
    """Images per label over every split, from a ``DatasetSummary.to_dict()``."""
    by_label: dict[str, int] = {}
    for labels in (dataset.get("by_split_label") or {}).values():
        for label, count in labels.items():
            by_label[label] = by_label.get(label, 0) + int(count)
    return by_label


def emr_check_budget(
    dataset: Mapping[str, Any], params: Mapping[str, Any], *, region: str | None = None
) -> dict[str, Any]:
    """The run's cost estimate in ``region`` (default: the configuration's); raises
    ``BudgetExceededError`` when over ``max_cost_usd``."""
    from include.config import load_config
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


def serverless_check_budget(
    dataset: Mapping[str, Any], params: Mapping[str, Any], *, region: str
) -> dict[str, Any]:
    """:func:`emr_check_budget` of the Serverless DAG: priced per vCPU/GB-hour
    (:func:`include.costs.serverless.estimate_serverless_cost`)."""
    from include.costs.serverless import estimate_serverless_cost
    from include.params.common import guard_settings_from_params
    from include.params.serverless import serverless_settings_from_params

    settings = serverless_settings_from_params(params)
    guards = guard_settings_from_params(params, emr=True)
    estimate = estimate_serverless_cost(
        images=images_of(dataset, settings.job),
        runtime=runtime_of(settings.job),
        sizing=settings.sizing.as_dict(),
        region=region,
        architecture=settings.architecture,
        poke_interval_s=settings.poke_interval_seconds,
    )
    log.info("%s (budget $%.2f)", estimate.describe(), guards.max_cost_usd)
    log_cache_upper_bound(settings.feature_cache)
    assert guards.max_cost_usd is not None
    check_budget(estimate, guards.max_cost_usd)  # type: ignore[arg-type]
    return {
        **estimate.to_dict(),
        "max_cost_usd": guards.max_cost_usd,
        "upper_bound_feature_cache": settings.feature_cache,
    }


def check_run_budget(
    platform: Literal["emr", "emr-serverless"],
    dataset: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    region: str | None = None,
) -> dict[str, Any]:
    """The ``check_budget`` task of both EMR DAGs: the run's estimate, before anything that
    costs money exists. Over ``max_cost_usd`` (or bad Params) it fails without a retry,
    naming the estimate and the Param to raise. ``region``: the plan's (the cluster DAG's
    default: the configuration's)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        if platform == "emr-serverless":
            if region is None:
                raise ValueError("a Serverless estimate needs the run's region")
            return serverless_check_budget(dataset, params, region=region)
        return emr_check_budget(dataset, params, region=region)
    except (BudgetExceededError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from exc


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
    from include.reruns.history import write_json_atomic

    if not estimate:
        return None
    return write_json_atomic(Path(run_dir) / ESTIMATE_FILE, dict(estimate))
