"""What is running and billing now: the project's active EMR clusters and EMR Serverless
applications, found by the project's tags with the lookups of ``python -m include.infra
status`` (:func:`include.infra.clusters.cluster_status`,
:func:`include.infra.applications.application_status`), each marked when it is older than
the sweeper's TTL (``FRUITS_CLUSTER_TTL_HOURS``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from include.config import PipelineConfig
from include.costs.serverless import serverless_cost_summary
from include.infra.applications import application_status
from include.infra.aws import make_context
from include.infra.clusters import cluster_status


def application_cost_so_far(client: Any, application_id: str, region: str, arch: str) -> float:
    """USD of the application's job runs so far: each run's billed usage, priced
    (:func:`include.costs.serverless.serverless_cost_summary`); a run not over yet counts 0."""

    total = 0.0
    paginator = client.get_paginator("list_job_runs")
    for page in paginator.paginate(applicationId=application_id):
        for listed in page["jobRuns"]:
            run = client.get_job_run(applicationId=application_id, jobRunId=listed["id"])["jobRun"]
            usd = serverless_cost_summary(run, region=region, architecture=arch)["estimated_usd"]
            total += usd or 0.0
    return total


def active_resources(config: PipelineConfig, now: datetime | None = None) -> dict[str, Any]:
    """``{"ttl_hours", "clusters", "applications", "region", "error"}``: the project's active
    clusters (``status``'s summaries: age, instance-hours, ``estimated_usd`` so far) and
    Serverless applications (``status``'s summaries + ``cost_usd`` so far), each with
    ``past_ttl``. AWS is reached through the Airflow connection ``config.aws_conn_id``;
    a lookup that fails gives empty lists and ``error`` (the page says why)."""

    now = now or datetime.now(UTC)
    ttl = float(config.cluster_ttl_hours)
    found: dict[str, Any] = {
        "ttl_hours": ttl,
        "region": config.region,
        "clusters": [],
        "applications": [],
        "error": None,
    }
    try:
        ctx = make_context(config.region, aws_conn_id=config.aws_conn_id)
        clusters = cluster_status(ctx, now=now)
        applications = application_status(ctx, now=now)
        client = ctx.client("emr-serverless")
        for app in applications:
            app["cost_usd"] = application_cost_so_far(
                client, app["application_id"], config.region, app["architecture"]
            )
    except Exception as exc:  # any AWS or connection failure is shown on the page, not raised
        found["error"] = f"{type(exc).__name__}: {exc}"
        return found
    found["clusters"] = [{**c, "past_ttl": c["age_hours"] > ttl} for c in clusters]
    found["applications"] = [{**a, "past_ttl": a["age_hours"] > ttl} for a in applications]
    return found
