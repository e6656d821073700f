"""Cost *estimates* for EMR clusters, from the price tables in :mod:`include.capacity.prices`.

Prices are on-demand EC2 + the EMR uplift per instance-hour in eu-west-1
(``prices.PRICE_TABLE_USD_PER_HOUR``), scaled to the run's region (``prices.REGION_PRICES``,
:func:`priced_region`: a region without figures is priced as ``PRICE_FALLBACK_REGION``, with
a warning, never an error). They are an estimate for the run report and the ``status``
command, not a bill: spot capacity, EBS volumes, S3 requests and data transfer are not
counted, and AWS bills per second with a one-minute minimum.

:func:`cluster_cost_summary` reads the shapes boto3 returns from ``describe_cluster``
(the ``Cluster`` object) and ``list_instance_groups`` (the ``InstanceGroups`` list), either
live (``datetime`` values) or after a JSON round trip with ``default=str`` (the
``cluster.json`` saved beside a run's results), where timestamps are strings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from include.capacity.prices import (
    PRICE_FALLBACK_REGION,
    PRICE_TABLE_REGION,
    PRICE_TABLE_USD_PER_HOUR,
    REGION_PRICES,
)

log = logging.getLogger(__name__)

PRICE_BASIS = (
    "estimate: on-demand EC2 + EMR uplift per instance-hour, eu-west-1 prices scaled to the "
    "region (include/capacity/prices.py PRICE_TABLE_USD_PER_HOUR, REGION_PRICES); excludes EBS, "
    "S3, data transfer; spot instances are priced at on-demand (an upper bound)"
)


@dataclass(frozen=True)
class PricedRegion:
    """Whose price figures estimate a run in ``region``, and where they come from."""

    region: str
    priced_as: str
    source: str
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def priced_region(region: str | None) -> PricedRegion:
    """``region``'s own figures, or ``PRICE_FALLBACK_REGION``'s with a logged warning (a
    region missing from ``REGION_PRICES``, or an unknown one): never an error, so a budget
    check or a report is never stopped by a missing price."""
    if region in REGION_PRICES:
        return PricedRegion(region, region, REGION_PRICES[region].source)
    fallback = PRICE_FALLBACK_REGION
    warning = (
        f"no price figures for region {region!r}: estimated with {fallback}'s "
        f"({REGION_PRICES[fallback].source}); add the region to REGION_PRICES in "
        "include/capacity/prices.py"
    )
    log.warning("%s", warning)
    return PricedRegion(str(region), fallback, REGION_PRICES[fallback].source, warning)


def region_factor(priced: PricedRegion, *, base: str = PRICE_TABLE_REGION) -> float:
    """``priced``'s prices relative to ``base``'s (their m5.xlarge prices' ratio)."""
    return REGION_PRICES[priced.priced_as].m5_xlarge_usd / REGION_PRICES[base].m5_xlarge_usd


def hourly_price(instance_type: str, region: str = PRICE_TABLE_REGION) -> float:
    """USD per hour for one instance of ``instance_type`` in ``region``: EC2 on-demand +
    EMR uplift (:func:`priced_region` for a region without figures).

    Raises ValueError (never KeyError) for a type that is not in the price table.
    """
    try:
        ec2, emr = PRICE_TABLE_USD_PER_HOUR[instance_type]
    except KeyError:
        known = ", ".join(sorted(PRICE_TABLE_USD_PER_HOUR))
        raise ValueError(
            f"no price for instance type {instance_type!r}; known types: {known} "
            "(add it to PRICE_TABLE_USD_PER_HOUR in include/capacity/prices.py)"
        ) from None
    return (ec2 + emr) * region_factor(priced_region(region))


def estimate_cost(
    instance_hours_by_type: Mapping[str, float], region: str = PRICE_TABLE_REGION
) -> float:
    """Estimated USD for the given instance-hours per instance type in ``region``.

    Raises ValueError for an unknown instance type or negative hours.
    """
    total = 0.0
    for instance_type, hours in instance_hours_by_type.items():
        if hours < 0:
            raise ValueError(f"instance-hours must be >= 0, got {hours} for {instance_type!r}")
        total += hourly_price(instance_type, region) * hours
    return total


def cluster_region(cluster_description: Mapping[str, Any]) -> str | None:
    """The region of ``describe_cluster``'s cluster, from its ``ClusterArn``
    (``arn:aws:elasticmapreduce:<region>:<account>:cluster/<id>``); None when absent."""
    parts = str(cluster_description.get("ClusterArn") or "").split(":")
    return parts[3] if len(parts) > 4 and parts[3] else None


def parse_timestamp(value: datetime | str | None) -> datetime | None:
    """A timezone-aware UTC datetime from boto3's datetime or its ``str()`` form.

    Naive values are taken as UTC. None and empty strings give None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from exc
    else:
        raise TypeError(f"expected a datetime or an ISO-8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _hours(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 3600.0)


def _timeline(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("Status") or {}).get("Timeline") or {}


def cluster_cost_summary(
    cluster_description: Mapping[str, Any],
    instance_groups: list[Mapping[str, Any]],
    now: datetime | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """Age, instance-hours so far per instance type and estimated USD of one cluster.

    ``cluster_description`` is ``describe_cluster(...)["Cluster"]``; ``instance_groups`` is
    ``list_instance_groups(...)["InstanceGroups"]``. A group counts
    ``max(RequestedInstanceCount, RunningInstanceCount)`` instances (a terminated cluster
    reports 0 running) from its creation (or the cluster's) until its end (or the cluster's,
    or ``now`` while it runs). Unknown instance types do not raise: they are listed in
    ``unpriced_instance_types`` and ``estimated_usd`` is None, so a report never shows a
    partial sum as if it were the whole cost. Priced in ``region`` (default: the cluster's,
    from its ARN); ``price_region`` records whose figures were used and where they come from.
    """
    now = parse_timestamp(now) if now is not None else datetime.now(UTC)
    timeline = _timeline(cluster_description)
    created = parse_timestamp(timeline.get("CreationDateTime"))
    if created is None:
        raise ValueError(
            "cluster description has no Status.Timeline.CreationDateTime; pass "
            "describe_cluster(...)['Cluster']"
        )
    ended = parse_timestamp(timeline.get("EndDateTime"))
    cluster_end = ended or now

    hours_by_type: dict[str, float] = {}
    groups: list[dict[str, Any]] = []
    for group in instance_groups:
        instance_type = str(group.get("InstanceType", ""))
        count = max(
            int(group.get("RequestedInstanceCount") or 0),
            int(group.get("RunningInstanceCount") or 0),
        )
        group_timeline = _timeline(group)
        start = parse_timestamp(group_timeline.get("CreationDateTime")) or created
        end = parse_timestamp(group_timeline.get("EndDateTime")) or cluster_end
        instance_hours = count * _hours(start, end)
        hours_by_type[instance_type] = hours_by_type.get(instance_type, 0.0) + instance_hours
        groups.append(
            {
                "id": group.get("Id"),
                "role": group.get("InstanceGroupType"),
                "market": group.get("Market"),
                "instance_type": instance_type,
                "instances": count,
                "instance_hours": instance_hours,
            }
        )

    unpriced = sorted(t for t in hours_by_type if t not in PRICE_TABLE_USD_PER_HOUR)
    priced = priced_region(region or cluster_region(cluster_description))
    estimated = None if unpriced else estimate_cost(hours_by_type, priced.priced_as)
    return {
        "cluster_id": cluster_description.get("Id"),
        "name": cluster_description.get("Name"),
        "state": (cluster_description.get("Status") or {}).get("State"),
        "created_at": created.isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "age_hours": _hours(created, now),
        "runtime_hours": _hours(created, cluster_end),
        "instance_groups": groups,
        "instance_hours_by_type": hours_by_type,
        "instance_hours": sum(hours_by_type.values()),
        "normalized_instance_hours": cluster_description.get("NormalizedInstanceHours"),
        "estimated_usd": estimated,
        "unpriced_instance_types": unpriced,
        "price_region": priced.to_dict(),
        "price_basis": f"{PRICE_BASIS}; {priced.priced_as} figures: {priced.source}",
    }
