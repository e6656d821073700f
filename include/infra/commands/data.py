"""Commands that move data: ``create-bucket``, ``upload-dataset``, ``download-results``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from include.config import PipelineConfig
from include.datasets.local import DatasetError, validate_dataset
from include.datasets.upload import upload_dataset
from include.emr.plan import build_run_plan
from include.infra.commands.common import (
    aws_context,
    bucket_arg,
    cli_config,
    prefix_arg,
    progress_bar,
)
from include.infra.errors import EXIT_OK, InfraError, RefusedError
from include.infra.results import download_results, list_runs
from include.params.run_paths import run_results_dir


def cmd_create_bucket(args: argparse.Namespace) -> int:
    """Create or re-harden the bucket and print the export lines for the pipeline."""
    from include.infra.bucket import BucketSettings, create_bucket, default_bucket_name  # noqa: PLC0415 (lazy: loads botocore)

    config = cli_config()
    prefix = prefix_arg(args, config)
    if args.bucket:
        settings = BucketSettings(args.bucket, prefix, args.log_retention_days)
        ctx = aws_context(args, config)
    else:
        ctx = aws_context(args, config)
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
    from include.params.cluster import emr_settings_from_params  # noqa: PLC0415 (lazy: loads airflow and sqlalchemy)

    settings = emr_settings_from_params({"dataset_dir": str(data_dir), "pack_dataset": pack})
    plan = build_run_plan(settings, config, dag_id="infra-cli", run_id="upload-dataset")
    return str(plan["dataset_prefix"])


def cmd_upload_dataset(args: argparse.Namespace) -> int:
    """Validate then upload the local dataset with the DAG's own upload function."""

    config = cli_config()
    bucket = bucket_arg(args, config)
    prefix = prefix_arg(args, config)
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

        os.environ["AWS_PROFILE"] = args.profile
    print(f"uploading {found.images} images from {data_dir} to s3://{bucket}/{key_prefix}/")
    with progress_bar("file", "upload") as bar:

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


def cmd_download_results(args: argparse.Namespace) -> int:
    """Download a run's results, or list the runs with --list."""

    config = cli_config()
    ctx = aws_context(args, config)
    source = args.source or f"s3://{bucket_arg(args, config)}/{prefix_arg(args, config)}/results"
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
    dest = args.dest or run_results_dir(config.results_dir, args.dag, args.run_id)
    bars: list[Any] = []

    def progress_factory(total: int) -> Callable[[int], None]:
        bar = progress_bar("B", "download")
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
