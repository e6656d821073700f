"""``python -m include.infra <command>``: set up, inspect and tear down the project's AWS side.

Commands (``--help`` on each for its options)::

    create-bucket     private, encrypted, TLS-only bucket with log expiry; prints FRUITS_BUCKET=...
    upload-dataset    the EMR DAG's upload (packed parquet shards by default), with a progress bar
    create-roles      EMR service role + EC2 instance profile + Airflow policy, scoped to the bucket
    print-roles       the same policy documents as JSON, for an administrator to apply
    status            active project clusters: age, instance-hours, estimated USD (exit 3 past TTL)
    terminate         --cluster-id ID... or --all (only clusters tagged Project=fruits-features)
    download-results  one run's results from S3 to a local folder (--list shows the runs)
    cleanup           clusters, bucket and roles; refuses without --yes-i-am-sure
    preflight         the EMR DAG's checks before a cluster exists (roles, subnet, quota, ...)

Exit codes: 0 done, 1 an AWS call or the command failed, 2 invalid input or refused (nothing
changed), 3 ``status`` found a cluster older than the TTL.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import PROJECT_TAG, PipelineConfig, load_config
from include.infra.errors import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TTL_EXCEEDED,
    InfraError,
    RefusedError,
)

if TYPE_CHECKING:
    from include.infra.aws import AwsContext
    from include.infra.iam import RoleSettings

CONFIRM_FLAG = "--yes-i-am-sure"


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
    from include.infra.iam import DEFAULT_INSTANCE_ROLE, DEFAULT_SERVICE_ROLE

    roles.add_argument("--service-role", default=DEFAULT_SERVICE_ROLE, help="EMR service role name")
    roles.add_argument(
        "--instance-role",
        default=DEFAULT_INSTANCE_ROLE,
        help="EC2 instance role and instance profile name",
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
        help="create the EMR service role, EC2 instance profile and Airflow policy",
    )
    p.set_defaults(handler=cmd_create_roles)

    p = sub.add_parser(
        "print-roles",
        parents=[common, roles, dataset],
        help="print the IAM documents as JSON for an administrator (creates nothing)",
    )
    p.add_argument("--account-id", help="account id to put in ARNs (default: ask STS)")
    p.set_defaults(handler=cmd_print_roles)

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
    p.add_argument("--dest", type=Path, help="local folder (default: FRUITS_RESULTS_DIR/<run id>)")
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

    from include.infra.preflight import add_preflight_arguments, cmd_preflight

    p = sub.add_parser(
        "preflight",
        parents=[common],
        help="check roles, subnet, instance type, vCPU quota, bucket and network (read-only)",
        description="The EMR DAG's preflight for a run with these settings, before anything "
        "is created or billed. Exit 1 when a check fails; warnings do not fail.",
    )
    add_preflight_arguments(p)
    p.set_defaults(handler=cmd_preflight)
    return parser


# --- helpers -------------------------------------------------------------------------------


def _config() -> PipelineConfig:
    try:
        return load_config()
    except ValueError as exc:
        raise RefusedError(f"configuration: {exc}") from None


def _context(args: argparse.Namespace, config: PipelineConfig) -> AwsContext:
    from include.infra.aws import make_context

    return make_context(
        args.region or config.region, profile=args.profile, aws_conn_id=args.aws_conn_id
    )


def _bucket(args: argparse.Namespace, config: PipelineConfig) -> str:
    from include.infra.bucket import validate_bucket_name

    return validate_bucket_name(args.bucket or config.bucket)


def _prefix(args: argparse.Namespace, config: PipelineConfig) -> str:
    prefix = (args.prefix if args.prefix is not None else config.prefix).strip("/")
    if not prefix:
        raise RefusedError("the key prefix must not be empty")
    return prefix


def _progress_bar(unit: str, desc: str) -> Any:
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs, tests).
    return tqdm(unit=unit, unit_scale=unit == "B", desc=desc, disable=None, file=sys.stderr)


# --- commands ------------------------------------------------------------------------------


def cmd_create_bucket(args: argparse.Namespace) -> int:
    """Create or re-harden the bucket and print the export lines for the pipeline."""
    from include.infra.bucket import BucketSettings, create_bucket, default_bucket_name

    config = _config()
    prefix = _prefix(args, config)
    if args.bucket:
        settings = BucketSettings(args.bucket, prefix, args.log_retention_days)
        ctx = _context(args, config)
    else:
        ctx = _context(args, config)
        settings = BucketSettings(
            default_bucket_name(ctx.account_id), prefix, args.log_retention_days
        )
    result = create_bucket(ctx, settings)
    verb = "created" if result["created"] else "already yours; settings re-applied"
    print(f"bucket {result['bucket']} in {result['region']}: {verb}")
    print("  public access: blocked (all four settings)")
    print(f"  default encryption: {result['encryption']}")
    print("  policy: deny requests without TLS (and TLS < 1.2)")
    print(f"  lifecycle: {prefix}/logs/ expires after {result['log_retention_days']} days")
    print("  layout (created by the pipeline as it writes):")
    for uri in result["layout"]:
        print(f"    {uri}")
    print("Add to your environment (.env):")
    print(f"export FRUITS_BUCKET={result['bucket']}")
    print(f"export FRUITS_REGION={result['region']}")
    return EXIT_OK


def dag_dataset_prefix(config: PipelineConfig, data_dir: Path, *, pack: bool) -> str:
    """The key prefix the EMR DAG reads this dataset from (so the DAG finds it uploaded)."""
    from include.emr.plan import build_run_plan
    from include.params import emr_settings_from_params

    settings = emr_settings_from_params({"dataset_dir": str(data_dir), "pack_dataset": pack})
    plan = build_run_plan(settings, config, dag_id="infra-cli", run_id="upload-dataset")
    return str(plan["dataset_prefix"])


def cmd_upload_dataset(args: argparse.Namespace) -> int:
    """Validate then upload the local dataset with the DAG's own upload function."""
    from include.dataset import DatasetError, validate_dataset
    from include.staging import upload_dataset

    config = _config()
    bucket = _bucket(args, config)
    prefix = _prefix(args, config)
    data_dir = (args.data_dir or config.data_dir).expanduser()
    try:
        found = validate_dataset(data_dir)
    except DatasetError as exc:
        raise RefusedError(str(exc)) from None
    key_prefix = args.key_prefix or dag_dataset_prefix(
        replace(config, bucket=bucket, prefix=prefix), data_dir, pack=not args.no_pack
    )
    if args.profile:
        # staging uploads through the provider's S3Hook, which reads boto3's default chain.
        import os

        os.environ["AWS_PROFILE"] = args.profile
    print(f"uploading {found.images} images from {data_dir} to s3://{bucket}/{key_prefix}/")
    with _progress_bar("file", "upload") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            summary = upload_dataset(
                data_dir,
                bucket,
                key_prefix,
                aws_conn_id=args.aws_conn_id,
                pack=not args.no_pack,
                progress=progress,
            )
        except (FileNotFoundError, ValueError) as exc:
            raise InfraError(f"upload failed: {exc}") from None
    print(
        f"{summary.uploaded} uploaded ({summary.bytes_uploaded} bytes), "
        f"{summary.skipped} unchanged, {summary.deleted} stale deleted"
    )
    print(f"job input: {summary.uri}")
    return EXIT_OK


def _role_settings(args: argparse.Namespace, config: PipelineConfig) -> RoleSettings:
    from include.infra.iam import RoleSettings

    return RoleSettings(
        bucket=_bucket(args, config),
        prefix=_prefix(args, config),
        service_role=args.service_role,
        instance_role=args.instance_role,
        dataset_uri=getattr(args, "dataset_uri", None) or config.dataset_uri or None,
    )


def cmd_create_roles(args: argparse.Namespace) -> int:
    """Create or update the IAM roles and print the settings the pipeline needs."""
    from include.infra.iam import create_roles

    config = _config()
    settings = _role_settings(args, config)
    ctx = _context(args, config)
    result = create_roles(ctx, settings)
    for kind in ("service_role", "instance_role"):
        state = "created" if result[f"{kind}_created"] else "updated"
        print(f"{kind.replace('_', ' ')} {result[kind]}: {state}")
    print(f"instance profile {result['instance_profile']}: ready")
    if settings.dataset_uri:
        from include.dataset_uri import outside_project

        if outside_project(settings.dataset_uri, bucket=settings.bucket, prefix=settings.prefix):
            print(f"  and may read (only read) the dataset {settings.dataset_uri}")
    print(f"Airflow policy {result['airflow_policy_arn']}: attach it to the IAM user or role")
    print("  that Airflow's AWS connection uses (aws iam attach-user-policy ...).")
    print("These are the pipeline's default role names; with other names, add to .env:")
    print(f"export FRUITS_EMR_SERVICE_ROLE={result['service_role']}")
    print(f"export FRUITS_EMR_INSTANCE_PROFILE={result['instance_profile']}")
    print("Every cluster carries the tag AmazonEMRServicePolicy_v2 needs; the subnet")
    print("(FRUITS_SUBNET_ID) must carry it too: `python -m include.infra preflight` checks.")
    return EXIT_OK


def cmd_print_roles(args: argparse.Namespace) -> int:
    """Print every document create-roles would apply, as one JSON object."""
    from include.infra.iam import (
        AIRFLOW_POLICY_NAME,
        INSTANCE_INLINE_POLICY,
        SERVICE_INLINE_POLICY,
        managed_service_policy_arn,
        render_documents,
    )

    config = _config()
    settings = _role_settings(args, config)
    ctx = _context(args, config)
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
        "airflow_policy": {"name": AIRFLOW_POLICY_NAME, "document": docs["airflow-pipeline"]},
        "tags": {"Project": PROJECT_TAG},
    }
    print(json.dumps(output, indent=2))
    return EXIT_OK


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
    """Print the active project clusters; exit 3 if one is older than the TTL."""
    from include.costs import PRICE_BASIS
    from include.infra.clusters import cluster_status

    config = _config()
    ttl = args.ttl_hours or float(config.cluster_ttl_hours)
    ctx = _context(args, config)
    summaries = cluster_status(ctx, now=datetime.now(UTC))
    expired = [s for s in summaries if s["age_hours"] > ttl]
    if args.json:
        print(json.dumps({"ttl_hours": ttl, "clusters": summaries}, indent=2, default=str))
    elif not summaries:
        print(f"no active clusters tagged Project={PROJECT_TAG} in {ctx.region}")
    else:
        print("\n".join(_format_status(summaries, ttl)))
        priced = [s["estimated_usd"] for s in summaries if s["estimated_usd"] is not None]
        print(f"total so far: ~{sum(priced):.2f} USD ({PRICE_BASIS})")
    for s in expired:
        print(
            f"cluster {s['cluster_id']} is {s['age_hours']:.1f} h old, past the TTL of {ttl:g} h: "
            f"python -m include.infra terminate --cluster-id {s['cluster_id']}",
            file=sys.stderr,
        )
    return EXIT_TTL_EXCEEDED if expired else EXIT_OK


def cmd_terminate(args: argparse.Namespace) -> int:
    """Terminate the named (or all) project clusters; foreign clusters are refused."""
    from include.infra.clusters import active_project_clusters, terminate

    config = _config()
    ctx = _context(args, config)
    ids = args.cluster_id or [c["Id"] for c in active_project_clusters(ctx)]
    if not ids:
        print(f"no active clusters tagged Project={PROJECT_TAG} in {ctx.region}")
        return EXIT_OK
    terminated = terminate(ctx, ids)
    for cluster_id in ids:
        state = "terminating" if cluster_id in terminated else "already terminated"
        print(f"{cluster_id}: {state}")
    return EXIT_OK


def cmd_download_results(args: argparse.Namespace) -> int:
    """Download a run's results, or list the runs with --list."""
    from include.infra.results import download_results, list_runs

    config = _config()
    ctx = _context(args, config)
    source = args.source or f"s3://{_bucket(args, config)}/{_prefix(args, config)}/results"
    if args.list:
        runs = list_runs(ctx, source)
        if not runs:
            print(f"no runs under {source}")
        for run in runs:
            print(
                f"{run['run_id']}\t{'complete' if run['complete'] else 'INCOMPLETE (no _SUCCESS)'}"
            )
        return EXIT_OK
    if not args.run_id:
        raise RefusedError("download-results needs --run-id (or --list to see the runs)")
    dest = args.dest or config.results_dir / args.run_id
    bars: list[Any] = []

    def progress_factory(total: int) -> Callable[[int], None]:
        bar = _progress_bar("B", "download")
        bar.total = total
        bars.append(bar)
        return bar.update

    try:
        result = download_results(
            ctx,
            source,
            args.run_id,
            dest,
            overwrite=args.overwrite,
            allow_incomplete=args.allow_incomplete,
            progress_factory=progress_factory,
        )
    finally:
        for bar in bars:
            bar.close()
    print(f"{result['files']} files ({result['bytes']} bytes) from {result['source']}")
    print(f"-> {result['dest']}")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Print the plan; with the confirmation flag, delete clusters, bucket and roles."""
    from include.infra.bucket import bucket_exists, bucket_tags, empty_and_delete_bucket
    from include.infra.clusters import active_project_clusters, terminate
    from include.infra.iam import (
        AIRFLOW_POLICY_NAME,
        airflow_policy_arn,
        delete_roles,
        get_project_role,
        project_policy_exists,
    )

    config = _config()
    ctx = _context(args, config)
    settings = _role_settings(args, config)
    bucket = settings.bucket

    # Build the whole plan (and every ownership check) before deleting anything.
    clusters = [c["Id"] for c in active_project_clusters(ctx)]
    delete_bucket = not args.keep_bucket and bucket_exists(ctx, bucket)
    if delete_bucket and bucket_tags(ctx, bucket).get("Project") != PROJECT_TAG:
        raise RefusedError(
            f"bucket {bucket!r} is not tagged Project={PROJECT_TAG} (not created by "
            "create-bucket): refusing to delete it; pass --keep-bucket to skip it"
        )
    roles: list[str] = []
    if not args.keep_roles:
        roles = [
            name
            for name in (settings.service_role, settings.instance_role)
            if get_project_role(ctx, name) is not None
        ]
        if project_policy_exists(ctx, airflow_policy_arn(ctx)):
            roles.append(AIRFLOW_POLICY_NAME)

    plan = [f"terminate cluster {c}" for c in clusters]
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
    if delete_bucket:
        deleted = empty_and_delete_bucket(ctx, bucket)
        print(f"deleted {deleted} objects and bucket {bucket}")
    if not args.keep_roles:
        for item in delete_roles(ctx, settings):
            print(f"deleted {item}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (errors are printed, not raised)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError

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
