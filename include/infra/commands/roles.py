"""Commands of the IAM side: ``create-roles`` and ``print-roles``."""

from __future__ import annotations

import argparse
import json

from include.config import PROJECT_TAG
from include.infra.commands.common import aws_context, cli_config, role_settings
from include.infra.errors import EXIT_OK, RefusedError
from include.params.dataset_uri import outside_project


def cmd_create_roles(args: argparse.Namespace) -> int:
    """Create or update the IAM roles and print the settings the pipeline needs."""
    from include.infra.iam import create_roles  # noqa: PLC0415 (lazy: loads botocore)

    config = cli_config()
    settings = role_settings(args, config)
    ctx = aws_context(args, config)
    result = create_roles(ctx, settings)
    for kind in ("service_role", "instance_role", "serverless_job_role"):
        state = "created" if result[f"{kind}_created"] else "updated"
        print(f"{kind.replace('_', ' ')} {result[kind]}: {state}")
    print(f"instance profile {result['instance_profile']}: ready")
    if settings.dataset_uri and outside_project(
        settings.dataset_uri, bucket=settings.bucket, prefix=settings.prefix
    ):
        print(
            "  the instance profile and the Serverless job role may read (only read) "
            f"the dataset {settings.dataset_uri}"
        )
    print(f"Airflow policy {result['airflow_policy_arn']}: attach it to the IAM user or role")
    print("  that Airflow's AWS connection uses (aws iam attach-user-policy ...).")
    print("These are the pipeline's default role names; with other names, add to .env:")
    print(f"export FRUITS_EMR_SERVICE_ROLE={result['service_role']}")
    print(f"export FRUITS_EMR_INSTANCE_PROFILE={result['instance_profile']}")
    print("Every cluster carries the tag AmazonEMRServicePolicy_v2 needs; the subnet")
    print("(FRUITS_SUBNET_ID), its VPC and existing ElasticMapReduce-* security groups must")
    print("carry it too (docs/infra.md): `python -m include.infra preflight` checks.")
    return EXIT_OK


def cmd_print_roles(args: argparse.Namespace) -> int:
    """Print every document create-roles would apply, as one JSON object."""
    from include.infra.iam import (  # noqa: PLC0415 (lazy: loads botocore)
        AIRFLOW_POLICY_NAME,
        INSTANCE_INLINE_POLICY,
        SERVERLESS_INLINE_POLICY,
        SERVICE_INLINE_POLICY,
        managed_service_policy_arn,
        render_documents,
    )

    config = cli_config()
    settings = role_settings(args, config)
    ctx = aws_context(args, config)
    if args.account_id:
        if not (args.account_id.isdigit() and len(args.account_id) == 12):
            raise RefusedError(f"--account-id must be 12 digits, got {args.account_id!r}")
        ctx.account_override = args.account_id
    docs = render_documents(ctx, settings)
    output = {
        "service_role": {
            "name": settings.service_role,
            "trust_policy": docs["emr-service-trust"],
            "managed_policies": [managed_service_policy_arn(ctx)],
            "inline_policies": {SERVICE_INLINE_POLICY: docs["emr-service-inline"]},
        },
        "instance_role": {
            "name": settings.instance_role,
            "instance_profile": settings.instance_profile,
            "trust_policy": docs["emr-ec2-trust"],
            "inline_policies": {INSTANCE_INLINE_POLICY: docs["emr-ec2-inline"]},
        },
        "serverless_job_role": {
            "name": settings.serverless_job_role,
            "trust_policy": docs["emr-serverless-trust"],
            "inline_policies": {SERVERLESS_INLINE_POLICY: docs["emr-serverless-job"]},
        },
        "airflow_policy": {"name": AIRFLOW_POLICY_NAME, "document": docs["airflow-pipeline"]},
        "tags": {"Project": PROJECT_TAG},
    }
    print(json.dumps(output, indent=2))
    return EXIT_OK
