"""Price tables: cluster (EC2 + EMR uplift) and EMR Serverless prices, by region.

Estimates for the budget guard, the report and the status command; how each figure was had
is said next to it (checked, or ASSUMED and derived).
"""

from __future__ import annotations

from dataclasses import dataclass

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
