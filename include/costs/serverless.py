"""Cost *estimates* for EMR Serverless job runs, from the prices in :mod:`include.capacity.prices`.

EMR Serverless bills the vCPU-, memory-GB- and storage-GB-hours a job run's workers hold,
per second with a one-minute minimum per worker, storage only beyond the free 20 GB per
worker. The job run reports exactly those figures as ``billedResourceUtilization``
(``GetJobRun``); :func:`serverless_cost_summary` prices them with
``prices.SERVERLESS_PRICE_TABLE_USD_PER_HOUR``. :func:`estimate_serverless_cost` is the
budget guard's estimate before anything exists (images / throughput + start time). Both are
estimates, not a bill (S3 requests and data transfer are not counted). A region without
figures is priced as ``prices.PRICE_FALLBACK_REGION`` with a warning
(:func:`include.costs.cluster.priced_region`); both record whose figures they used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from include.capacity.prices import (
    SERVERLESS_FREE_STORAGE_GB,
    SERVERLESS_PRICE_SOURCES,
    SERVERLESS_PRICE_TABLE_USD_PER_HOUR,
)
from include.costs.cluster import PricedRegion, priced_region
from include.costs.throughput import SERVERLESS_START_S, THROUGHPUT_IMAGES_PER_S_PER_VCPU

PRICE_BASIS = (
    "estimate: billedResourceUtilization of the job run x EMR Serverless on-demand prices "
    "per vCPU-hour, GB-hour of memory and GB-hour of storage beyond 20 GB per worker "
    "(include/capacity/prices.py SERVERLESS_PRICE_TABLE_USD_PER_HOUR); excludes S3 and data "
    "transfer"
)
JOB_RUN_FILE = "job_run.json"
"""Saved beside a Serverless run's results: ``{"jobRun", "application", "region"}``."""
MINIMUM_HOURS = 1 / 60
"""EMR Serverless bills every worker for at least one minute."""


def serverless_prices(
    region: str, architecture: str
) -> tuple[tuple[float, float, float] | None, PricedRegion]:
    """(USD per vCPU-hour, per GB-hour memory, per GB-hour storage) and whose figures they
    are: a region without figures gets the fallback region's (a warning); None only for an
    architecture without prices."""
    priced = priced_region(region)  # the Serverless table has every REGION_PRICES region
    source = SERVERLESS_PRICE_SOURCES[priced.priced_as]
    priced = PricedRegion(priced.region, priced.priced_as, source, priced.warning)
    return SERVERLESS_PRICE_TABLE_USD_PER_HOUR[priced.priced_as].get(architecture), priced


def serverless_cost_summary(
    job_run: Mapping[str, Any], *, region: str, architecture: str = "X86_64"
) -> dict[str, Any]:
    """The job run's billed vCPU/memory/storage-hours and their estimated USD.

    ``job_run`` is ``get_job_run(...)["jobRun"]``. An architecture missing from the price
    table does not raise: ``estimated_usd`` is None and ``unpriced`` says why, so a report
    never shows a partial sum as the whole cost. A region without figures is priced with
    the fallback region's; ``price_region`` says whose.
    """
    billed = job_run.get("billedResourceUtilization") or {}
    vcpu_h = float(billed.get("vCPUHour") or 0.0)
    memory_h = float(billed.get("memoryGBHour") or 0.0)
    storage_h = float(billed.get("storageGBHour") or 0.0)
    if min(vcpu_h, memory_h, storage_h) < 0:
        raise ValueError(f"billedResourceUtilization must not be negative: {dict(billed)}")
    prices, priced = serverless_prices(region, architecture)
    usd = None
    if prices is not None:
        usd = vcpu_h * prices[0] + memory_h * prices[1] + storage_h * prices[2]
    return {
        "job_run_id": job_run.get("jobRunId"),
        "application_id": job_run.get("applicationId"),
        "state": job_run.get("state"),
        "region": region,
        "architecture": architecture,
        "vcpu_hours": vcpu_h,
        "memory_gb_hours": memory_h,
        "storage_gb_hours": storage_h,
        "execution_seconds": job_run.get("totalExecutionDurationSeconds"),
        "prices_usd_per_hour": list(prices) if prices else None,
        "estimated_usd": usd,
        "unpriced": None if prices else f"no price for {architecture} in {region}",
        "price_region": priced.to_dict(),
        "price_basis": f"{PRICE_BASIS}; {priced.priced_as} figures: {priced.source}",
    }


@dataclass(frozen=True)
class ServerlessCostEstimate:
    """An estimated Serverless run: the inputs, the seconds, resource-hours and USD."""

    images: int
    runtime: str
    images_per_s_per_vcpu: float
    executor_vcpus: int
    total_vcpu: int
    total_memory_gb: int
    billed_storage_gb: int
    start_s: float
    featurise_s: float
    poke_interval_s: float
    hours: float
    vcpu_hours: float
    memory_gb_hours: float
    storage_gb_hours: float
    region: str
    architecture: str
    estimated_usd: float
    priced_as: str = ""
    price_source: str = ""
    price_warning: str | None = None
    kind: str = "emr-serverless"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the log and the failure message."""
        return (
            f"estimated ${self.estimated_usd:.2f}: {self.images} images / "
            f"({self.images_per_s_per_vcpu:g} images/s per vCPU [{self.runtime}] x "
            f"{self.executor_vcpus} executor vCPUs) = {self.featurise_s:.0f} s + "
            f"{self.start_s:.0f} s start + {self.poke_interval_s:.0f} s poke interval = "
            f"{self.hours:.3f} h x ({self.total_vcpu} vCPU, {self.total_memory_gb} GB"
            f", {self.billed_storage_gb} billed GB disk) = {self.vcpu_hours:.3f} vCPU-h, "
            f"{self.memory_gb_hours:.3f} GB-h ({self.architecture}, {self.priced_as} prices"
            + (f", for {self.region}: no figures of its own" if self.price_warning else "")
            + ")"
        )


def estimate_serverless_cost(
    *,
    images: int,
    runtime: str,
    sizing: Mapping[str, Any],
    region: str,
    architecture: str,
    poke_interval_s: float,
    start_s: float = SERVERLESS_START_S,
    throughput: Mapping[str, float] = THROUGHPUT_IMAGES_PER_S_PER_VCPU,
) -> ServerlessCostEstimate:
    """Images / (throughput x executor vCPUs) + start + one poke, x the workers' resources.

    ``sizing`` is ``ServerlessSizing.as_dict()``. Raises ValueError for unknown names, bad
    counts, or an architecture without prices; a region without figures is estimated with
    the fallback region's (see the module docstring), never refused.
    """
    if images < 0:
        raise ValueError(f"images must be >= 0, got {images}")
    if poke_interval_s < 0 or start_s < 0:
        raise ValueError("times must be >= 0")
    if runtime not in throughput:
        raise ValueError(f"no throughput figure for runtime {runtime!r}")
    prices, priced = serverless_prices(region, architecture)
    if prices is None:
        raise ValueError(
            f"no EMR Serverless price for architecture {architecture!r} (X86_64 or ARM64; "
            "SERVERLESS_PRICE_TABLE_USD_PER_HOUR in include/capacity/prices.py)"
        )
    per_vcpu = float(throughput[runtime])
    executor_vcpus = int(sizing["executors"]) * int(sizing["executor_vcpu"])
    featurise_s = images / (per_vcpu * executor_vcpus)
    hours = max(MINIMUM_HOURS, (start_s + featurise_s + poke_interval_s) / 3600.0)
    storage = (int(sizing["executors"]) + 1) * max(
        0, int(sizing["disk_gb"]) - SERVERLESS_FREE_STORAGE_GB
    )
    vcpu_h = int(sizing["total_vcpu"]) * hours
    memory_h = int(sizing["total_memory_gb"]) * hours
    storage_h = storage * hours
    return ServerlessCostEstimate(
        images=images,
        runtime=runtime,
        images_per_s_per_vcpu=per_vcpu,
        executor_vcpus=executor_vcpus,
        total_vcpu=int(sizing["total_vcpu"]),
        total_memory_gb=int(sizing["total_memory_gb"]),
        billed_storage_gb=storage,
        start_s=float(start_s),
        featurise_s=featurise_s,
        poke_interval_s=float(poke_interval_s),
        hours=hours,
        vcpu_hours=vcpu_h,
        memory_gb_hours=memory_h,
        storage_gb_hours=storage_h,
        region=region,
        architecture=architecture,
        estimated_usd=vcpu_h * prices[0] + memory_h * prices[1] + storage_h * prices[2],
        priced_as=priced.priced_as,
        price_source=priced.source,
        price_warning=priced.warning,
    )
