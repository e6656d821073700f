"""What the CLI's commands share: configuration, AWS context and the common options.

Each helper turns bad input into a :class:`~include.infra.errors.RefusedError` (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from include.config import PipelineConfig, load_config
from include.infra.aws import make_context
from include.infra.errors import RefusedError

if TYPE_CHECKING:
    from include.infra.aws import AwsContext
    from include.infra.iam import RoleSettings

CONFIRM_FLAG = "--yes-i-am-sure"


def cli_config() -> PipelineConfig:
    """The pipeline's configuration; a bad setting is a refusal, not a traceback."""
    try:
        return load_config()
    except ValueError as exc:
        raise RefusedError(f"configuration: {exc}") from None


def aws_context(args: argparse.Namespace, config: PipelineConfig) -> AwsContext:
    """The session for --region/--profile/--aws-conn-id (config's region by default)."""

    return make_context(
        args.region or config.region, profile=args.profile, aws_conn_id=args.aws_conn_id
    )


def bucket_arg(args: argparse.Namespace, config: PipelineConfig) -> str:
    """--bucket or FRUITS_BUCKET, validated."""
    from include.infra.bucket import validate_bucket_name  # noqa: PLC0415 (lazy: loads botocore)

    return validate_bucket_name(args.bucket or config.bucket)


def prefix_arg(args: argparse.Namespace, config: PipelineConfig) -> str:
    """--prefix or FRUITS_PREFIX without slashes at the ends; never empty."""
    prefix = (args.prefix if args.prefix is not None else config.prefix).strip("/")
    if not prefix:
        raise RefusedError("the key prefix must not be empty")
    return prefix


def progress_bar(unit: str, desc: str) -> Any:
    """A tqdm bar on stderr (none when stderr is not a terminal)."""
    from tqdm import tqdm  # noqa: PLC0415 (lazy: loads tqdm)

    # disable=None: no bar when stderr is not a terminal (CI logs, tests).
    return tqdm(unit=unit, unit_scale=unit == "B", desc=desc, disable=None, file=sys.stderr)


def role_settings(args: argparse.Namespace, config: PipelineConfig) -> RoleSettings:
    """The role names and bucket scope from the options and config."""
    from include.infra.iam import RoleSettings  # noqa: PLC0415 (lazy: loads botocore)

    return RoleSettings(
        bucket=bucket_arg(args, config),
        prefix=prefix_arg(args, config),
        service_role=args.service_role,
        instance_role=args.instance_role,
        serverless_job_role=args.serverless_job_role,
        dataset_uri=getattr(args, "dataset_uri", None) or config.dataset_uri or None,
    )
