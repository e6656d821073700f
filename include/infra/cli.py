"""``python -m include.infra <command>``: set up, inspect and tear down the project's AWS side.

Commands (``--help`` on each for its options)::

    create-bucket     private, encrypted, TLS-only bucket with log expiry; prints FRUITS_BUCKET=...
    upload-dataset    the EMR DAG's upload (packed parquet shards by default), with a progress bar
    create-roles      EMR service role, EC2 instance profile, Serverless job role, Airflow policy
    print-roles       the same policy documents as JSON, for an administrator to apply
    create-security-configuration
                      EMR security configuration (encryption at rest; local disks with
                      --kms-key-arn); prints FRUITS_EMR_SECURITY_CONFIGURATION=...
    status            active project clusters (age, instance-hours, estimated USD; exit 3 past
                      TTL), Serverless applications and their running job runs
    terminate         --cluster-id ID... or --all (only clusters tagged Project=fruits-features)
    download-results  one run's results from S3 to a local folder (--list shows the runs)
    cleanup           clusters, Serverless applications, bucket and roles; needs --yes-i-am-sure
    preflight         the EMR DAG's checks before a cluster exists (roles, subnet, quota, ...);
                      --serverless: the Serverless DAG's (job role, bucket)

Exit codes: 0 done, 1 an AWS call or the command failed, 2 invalid input or refused (nothing
changed), 3 ``status`` found a cluster older than the TTL.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from include.config import PROJECT_TAG
from include.infra.commands.common import CONFIRM_FLAG
from include.infra.commands.data import (
    cmd_create_bucket,
    cmd_download_results,
    cmd_upload_dataset,
    dag_dataset_prefix,
)
from include.infra.commands.resources import cmd_cleanup, cmd_status, cmd_terminate
from include.infra.commands.roles import cmd_create_roles, cmd_print_roles
from include.infra.commands.security import cmd_create_security_configuration
from include.infra.errors import InfraError

__all__ = ["CONFIRM_FLAG", "build_parser", "dag_dataset_prefix", "main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands share the AWS and bucket options)."""
    common = argparse.ArgumentParser(add_help=False)
    aws = common.add_argument_group("AWS")
    aws.add_argument(
        "--region", help="AWS region (default: FRUITS_REGION or eu-west-1; EU regions only)"
    )
    aws.add_argument("--profile", help="AWS CLI profile (default: boto3's credential chain)")
    aws.add_argument(
        "--aws-conn-id",
        help="use this Airflow connection's credentials instead of boto3's chain",
    )
    aws.add_argument("--bucket", help="bucket name (default: FRUITS_BUCKET)")
    aws.add_argument("--prefix", help="key prefix in the bucket (default: FRUITS_PREFIX or fruits)")

    roles = argparse.ArgumentParser(add_help=False)
    from include.infra.iam import (  # noqa: PLC0415 (lazy: loads botocore)
        DEFAULT_INSTANCE_ROLE,
        DEFAULT_SERVERLESS_JOB_ROLE,
        DEFAULT_SERVICE_ROLE,
    )

    roles.add_argument("--service-role", default=DEFAULT_SERVICE_ROLE, help="EMR service role name")
    roles.add_argument(
        "--instance-role",
        default=DEFAULT_INSTANCE_ROLE,
        help="EC2 instance role and instance profile name",
    )
    roles.add_argument(
        "--serverless-job-role",
        default=DEFAULT_SERVERLESS_JOB_ROLE,
        help="EMR Serverless job runtime role name (the job runs' execution role)",
    )

    parser = argparse.ArgumentParser(
        prog="python -m include.infra",
        description="Set up, inspect and tear down the project's AWS side (S3, IAM, EMR).",
        epilog="Exit codes: 0 done, 1 failure, 2 invalid input or refused, 3 cluster past TTL.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "create-bucket",
        parents=[common],
        help="create the private, encrypted, TLS-only project bucket",
        description="Create (or re-harden) the project bucket: public access blocked, SSE-S3 "
        "default encryption, a policy denying non-TLS requests, logs/ expiring after N days. "
        f"Without --bucket the name is {PROJECT_TAG}-<account id>-<yyyymmdd>.",
    )
    p.add_argument("--log-retention-days", type=_positive_int, default=30)
    p.set_defaults(handler=cmd_create_bucket)

    p = sub.add_parser(
        "upload-dataset",
        parents=[common],
        help="upload a local Fruits-360-style folder (the DAG's upload code)",
    )
    p.add_argument("--data-dir", type=Path, help="dataset folder (default: FRUITS_DATA_DIR)")
    p.add_argument(
        "--key-prefix",
        help="destination key prefix (default: the EMR DAG's, "
        "<prefix>/datasets/<folder name>/packed, or .../images with --no-pack)",
    )
    p.add_argument(
        "--no-pack",
        action="store_true",
        help="upload every image as its own object instead of parquet shards",
    )
    p.set_defaults(handler=cmd_upload_dataset)

    dataset = argparse.ArgumentParser(add_help=False)
    dataset.add_argument(
        "--dataset-uri",
        help="s3://bucket/prefix/ of a dataset read in place (default: FRUITS_DATASET_URI); "
        "outside the project's bucket/prefix, the instance profile may read (only) it",
    )

    p = sub.add_parser(
        "create-roles",
        parents=[common, roles, dataset],
        help="create the EMR service role, EC2 instance profile, EMR Serverless job role and "
        "Airflow policy",
    )
    p.set_defaults(handler=cmd_create_roles)

    p = sub.add_parser(
        "print-roles",
        parents=[common, roles, dataset],
        help="print the IAM documents as JSON for an administrator (creates nothing)",
    )
    p.add_argument("--account-id", help="account id to put in ARNs (default: ask STS)")
    p.set_defaults(handler=cmd_print_roles)

    from include.infra.security_configuration import DEFAULT_SECURITY_CONFIGURATION  # noqa: PLC0415 (lazy: loads botocore)

    p = sub.add_parser(
        "create-security-configuration",
        parents=[common, roles],
        help="create the EMR security configuration (encryption at rest) the clusters name",
        description="EMRFS S3 encryption (SSE-S3, or SSE-KMS with --kms-key-arn) and, with "
        "--kms-key-arn, local disk + EBS encryption; the roles get use of that key only. No "
        "in-transit encryption (it needs certificates).",
    )
    p.add_argument("--name", default=DEFAULT_SECURITY_CONFIGURATION)
    p.add_argument("--kms-key-arn", help="KMS key ARN in the region (local disks need one)")
    p.set_defaults(handler=cmd_create_security_configuration)

    p = sub.add_parser(
        "status",
        parents=[common],
        help="the project's active clusters, their age and estimated cost",
    )
    p.add_argument(
        "--ttl-hours",
        type=_positive_float,
        help="exit 3 if a cluster is older (default: FRUITS_CLUSTER_TTL_HOURS, or "
        "create wait + full-mode step timeout + 1 h)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser(
        "terminate", parents=[common], help="terminate one, several or all project clusters"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster-id", action="append", help="cluster id (repeatable)")
    which.add_argument("--all", action="store_true", help="every active project cluster")
    p.set_defaults(handler=cmd_terminate)

    p = sub.add_parser(
        "download-results", parents=[common], help="download one run's results from S3"
    )
    p.add_argument("--run-id", help="the run to download")
    p.add_argument("--list", action="store_true", help="list the runs under --source and exit")
    p.add_argument("--source", help="results base URI (default: s3://<bucket>/<prefix>/results)")
    p.add_argument(
        "--dag",
        default="fruits_emr_pipeline",
        help="the DAG that made the run: the default --dest's folder (default: %(default)s)",
    )
    p.add_argument(
        "--dest", type=Path, help="local folder (default: FRUITS_RESULTS_DIR/<dag>/<run id>)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --dest")
    p.add_argument(
        "--allow-incomplete", action="store_true", help="download a run without _SUCCESS"
    )
    p.set_defaults(handler=cmd_download_results)

    p = sub.add_parser(
        "cleanup",
        parents=[common, roles],
        help=f"delete clusters, the bucket and the roles (needs {CONFIRM_FLAG})",
        description="Terminate the project's clusters, empty and delete the bucket, delete the "
        f"roles. Without {CONFIRM_FLAG} it only prints what it would delete.",
    )
    p.add_argument(
        CONFIRM_FLAG, dest="confirmed", action="store_true", help="really delete (no undo)"
    )
    p.add_argument("--keep-bucket", action="store_true", help="leave the bucket and its data")
    p.add_argument("--keep-roles", action="store_true", help="leave the IAM roles and policy")
    p.set_defaults(handler=cmd_cleanup)

    from include.infra.commands.preflight import add_preflight_arguments, cmd_preflight  # noqa: PLC0415 (lazy: loads botocore)

    p = sub.add_parser(
        "preflight",
        parents=[common],
        help="check roles, subnet, instance type, vCPU quota, bucket and network (read-only)",
        description="The EMR DAG's preflight for a run with these settings, before anything "
        "is created or billed (with --serverless, the EMR Serverless DAG's: job role and "
        "bucket). Exit 1 when a check fails; warnings do not fail.",
    )
    add_preflight_arguments(p)
    p.set_defaults(handler=cmd_preflight)
    return parser


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (errors are printed, not raised)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError  # noqa: PLC0415 (lazy: loads botocore)

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoCredentialsError:
        print(
            "error: no AWS credentials found (set AWS_PROFILE, use --profile, or --aws-conn-id)",
            file=sys.stderr,
        )
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(
            f"error: AWS {exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}",
            file=sys.stderr,
        )
        return 1
    except (BotoCoreError, WaiterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
