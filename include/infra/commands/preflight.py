"""``python -m include.infra preflight``: the DAGs' preflight checks, run by hand.

The checks themselves live in :mod:`include.infra.preflight`, which the DAGs call too.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from include.capacity.prices import ALLOWED_INSTANCE_TYPES
from include.config import DEFAULT_SERVERLESS_JOB_ROLE, load_config
from include.emr.plan import build_run_plan
from include.infra.aws import make_context
from include.infra.errors import EXIT_FAILURE, EXIT_OK, RefusedError
from include.infra.preflight import (
    ClusterRequest,
    ServerlessRequest,
    failures,
    preflight_serverless,
    run_preflight,
)


def add_preflight_arguments(parser: argparse.ArgumentParser) -> None:
    """The cluster shape to check (the EMR DAG's Params of the same names), or --serverless."""

    parser.add_argument("--instance-type", choices=ALLOWED_INSTANCE_TYPES)
    parser.add_argument("--core-nodes", type=int, help="core nodes (default: the DAG's)")
    parser.add_argument("--spot", action="store_true", help="core nodes on the spot market")
    parser.add_argument(
        "--serverless",
        action="store_true",
        help="check for an EMR Serverless run instead (job role and bucket)",
    )
    parser.add_argument(
        "--serverless-job-role",
        default=DEFAULT_SERVERLESS_JOB_ROLE,
        help="with --serverless: the job runtime role (name or ARN)",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def cmd_preflight(args: argparse.Namespace) -> int:
    """Run the checks for the DAG's default run (or the given shape); exit 1 on a failure."""

    try:
        config = load_config()
        if args.bucket:
            config = replace(config, bucket=args.bucket)
        if args.region:
            config = replace(config, region=args.region)
    except ValueError as exc:
        raise RefusedError(str(exc)) from None
    ctx = make_context(config.region, profile=args.profile, aws_conn_id=args.aws_conn_id)
    if args.serverless:
        request = ServerlessRequest(
            region=config.region, bucket=config.bucket, job_role=args.serverless_job_role
        )
        checks = preflight_serverless(ctx.client, request)
    else:
        checks = run_preflight(ctx.client, _cluster_request(args, config))
    if args.json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        print("\n".join(c.line() for c in checks))
    return EXIT_FAILURE if failures(checks) else EXIT_OK


def _cluster_request(args: argparse.Namespace, config: Any) -> ClusterRequest:
    """The RunJobFlow request the EMR DAG would send for this shape."""
    from include.params.cluster import emr_settings_from_params  # noqa: PLC0415 (lazy: loads airflow and sqlalchemy)

    shape: dict[str, Any] = {"spot_core_nodes": bool(args.spot)}
    if args.instance_type:
        shape["instance_type"] = args.instance_type
    if args.core_nodes is not None:
        shape["core_nodes"] = args.core_nodes
    try:
        settings = emr_settings_from_params(shape)
    except ValueError as exc:
        raise RefusedError(str(exc)) from None
    plan = build_run_plan(settings, config, dag_id="preflight", run_id="preflight")
    return ClusterRequest.from_overrides(
        plan["job_flow_overrides"],
        region=config.region,
        bucket=config.bucket,
        install_from_s3_only=False,
    )
