"""Commands on what runs and costs: ``status``, ``terminate``, ``cleanup``.

``status`` and ``cleanup`` cover the EMR Serverless applications too
(:mod:`include.infra.applications`); ``terminate`` is for clusters only.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from include.config import PROJECT_TAG
from include.costs.cluster import PRICE_BASIS
from include.infra.commands.common import (
    CONFIRM_FLAG,
    aws_context,
    cli_config,
    role_settings,
)
from include.infra.errors import EXIT_OK, EXIT_REFUSED, EXIT_TTL_EXCEEDED, RefusedError


def _format_status(summaries: list[dict[str, Any]], ttl_hours: float) -> list[str]:
    lines = [
        f"{'CLUSTER':<16} {'NAME':<28} {'STATE':<13} {'AGE h':>7} {'INST-h':>8} {'EST USD':>9}"
    ]
    for s in summaries:
        usd = "n/a" if s["estimated_usd"] is None else f"{s['estimated_usd']:.2f}"
        flag = "  > TTL" if s["age_hours"] > ttl_hours else ""
        lines.append(
            f"{s['cluster_id']:<16} {str(s['name'])[:28]:<28} {s['state']:<13} "
            f"{s['age_hours']:>7.2f} {s['instance_hours']:>8.2f} {usd:>9}{flag}"
        )
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    """Print the active project clusters and Serverless applications; exit 3 if a cluster
    is older than the TTL."""
    from include.infra.applications import application_status, format_application_status  # noqa: PLC0415 (lazy: loads botocore)
    from include.infra.clusters import cluster_status  # noqa: PLC0415 (lazy: loads botocore)

    config = cli_config()
    ttl = args.ttl_hours or float(config.cluster_ttl_hours)
    ctx = aws_context(args, config)
    now = datetime.now(UTC)
    summaries = cluster_status(ctx, now=now)
    applications = application_status(ctx, now=now)
    expired = [s for s in summaries if s["age_hours"] > ttl]
    if args.json:
        report = {"ttl_hours": ttl, "clusters": summaries, "serverless_applications": applications}
        print(json.dumps(report, indent=2, default=str))
    else:
        if not summaries:
            print(f"no active clusters tagged Project={PROJECT_TAG} in {ctx.region}")
        else:
            print("\n".join(_format_status(summaries, ttl)))
            priced = [s["estimated_usd"] for s in summaries if s["estimated_usd"] is not None]
            print(f"total so far: ~{sum(priced):.2f} USD ({PRICE_BASIS})")
        if not applications:
            print(f"no EMR Serverless applications tagged Project={PROJECT_TAG} in {ctx.region}")
        else:
            print("\n".join(format_application_status(applications)))
    for s in expired:
        print(
            f"cluster {s['cluster_id']} is {s['age_hours']:.1f} h old, past the TTL of {ttl:g} h: "
            f"python -m include.infra terminate --cluster-id {s['cluster_id']}",
            file=sys.stderr,
        )
    return EXIT_TTL_EXCEEDED if expired else EXIT_OK


def cmd_terminate(args: argparse.Namespace) -> int:
    """Terminate the named (or all) project clusters; foreign clusters are refused."""
    from include.infra.clusters import active_project_clusters, terminate  # noqa: PLC0415 (lazy: loads botocore)

    config = cli_config()
    ctx = aws_context(args, config)
    ids = args.cluster_id or [c["Id"] for c in active_project_clusters(ctx)]
    if not ids:
        print(f"no active clusters tagged Project={PROJECT_TAG} in {ctx.region}")
        return EXIT_OK
    terminated = terminate(ctx, ids)
    for cluster_id in ids:
        state = "terminating" if cluster_id in terminated else "already terminated"
        print(f"{cluster_id}: {state}")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Print the plan; with the confirmation flag, delete clusters, Serverless applications,
    bucket and roles."""
    from include.infra.applications import (  # noqa: PLC0415 (lazy: loads botocore)
        project_applications,
        refuse_busy_applications,
        remove_applications,
    )
    from include.infra.bucket import bucket_exists, bucket_tags, empty_and_delete_bucket  # noqa: PLC0415 (lazy: loads botocore)
    from include.infra.clusters import active_project_clusters, terminate  # noqa: PLC0415 (lazy: loads botocore)
    from include.infra.iam import (  # noqa: PLC0415 (lazy: loads botocore)
        AIRFLOW_POLICY_NAME,
        airflow_policy_arn,
        delete_roles,
        get_project_role,
        project_policy_exists,
        project_role_names,
    )

    config = cli_config()
    ctx = aws_context(args, config)
    settings = role_settings(args, config)
    bucket = settings.bucket

    # Build the whole plan (and every ownership check) before deleting anything.
    clusters = [c["Id"] for c in active_project_clusters(ctx)]
    applications = project_applications(ctx)
    refuse_busy_applications(ctx, applications)
    delete_bucket = not args.keep_bucket and bucket_exists(ctx, bucket)
    if delete_bucket and bucket_tags(ctx, bucket).get("Project") != PROJECT_TAG:
        raise RefusedError(
            f"bucket {bucket!r} is not tagged Project={PROJECT_TAG} (not created by "
            "create-bucket): refusing to delete it; pass --keep-bucket to skip it"
        )
    roles: list[str] = []
    if not args.keep_roles:
        roles = [
            name for name in project_role_names(settings) if get_project_role(ctx, name) is not None
        ]
        if project_policy_exists(ctx, airflow_policy_arn(ctx)):
            roles.append(AIRFLOW_POLICY_NAME)

    plan = [f"terminate cluster {c}" for c in clusters]
    plan += [
        f"stop and delete EMR Serverless application {a['applicationId']} ({a.get('name', '')})"
        for a in applications
    ]
    if delete_bucket:
        plan.append(f"delete every object in s3://{bucket} and the bucket itself")
    plan += [f"delete IAM {name}" for name in roles]
    if not plan:
        print("nothing to clean up")
        return EXIT_OK
    header = "cleanup will:" if args.confirmed else "cleanup would:"
    print("\n".join([header, *(f"  - {line}" for line in plan)]))
    if not args.confirmed:
        print(f"refusing to delete anything without {CONFIRM_FLAG}", file=sys.stderr)
        return EXIT_REFUSED

    if clusters:
        terminate(ctx, clusters)
        # Terminating clusters still push their logs to the bucket: wait before emptying it.
        waiter = ctx.client("emr").get_waiter("cluster_terminated")
        for cluster_id in clusters:
            waiter.wait(ClusterId=cluster_id, WaiterConfig={"Delay": 30, "MaxAttempts": 60})
            print(f"terminated {cluster_id}")
    for app_id in remove_applications(ctx, applications):
        print(f"deleted EMR Serverless application {app_id}")
    if delete_bucket:
        deleted = empty_and_delete_bucket(ctx, bucket)
        print(f"deleted {deleted} objects and bucket {bucket}")
    if not args.keep_roles:
        for item in delete_roles(ctx, settings):
            print(f"deleted {item}")
    return EXIT_OK
