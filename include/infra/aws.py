"""AWS sessions for the CLI: region checks and one place that builds clients.

The CLI uses a plain boto3 session by default (env credentials, ``--profile``/AWS_PROFILE, SSO,
instance roles): creating the bucket and the IAM roles is an administrator's job, usually done
with other credentials than the pipeline's, before Airflow is configured, and it should not need
an Airflow home or metadata DB (nor Airflow's ~3 s import). ``--aws-conn-id`` opts into the
Airflow connection's credentials through the provider's ``AwsBaseHook`` instead.
Clients are created inside functions, at run time, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from include.config import ALLOWED_REGIONS
from include.infra.errors import RefusedError

if TYPE_CHECKING:
    import boto3


def validate_region(region: str) -> str:
    """Return ``region`` if it is in the EU allow-list, else raise RefusedError."""
    if region not in ALLOWED_REGIONS:
        raise RefusedError(
            f"region {region!r} is not allowed: the data and results stay in the EU. "
            f"Use one of: {', '.join(ALLOWED_REGIONS)}"
        )
    return region


@dataclass
class AwsContext:
    """A boto3 session pinned to one allowed region, with the account facts policies need."""

    session: boto3.session.Session
    region: str
    account_override: str | None = None
    """Use this account id instead of asking STS (``print-roles --account-id``)."""
    aws_conn_id: str | None = None
    """With ``--aws-conn-id``: the clients are the provider's ``AwsBaseHook`` ones, so the
    connection's ``endpoint_url`` (e.g. the EMR emulator's) is honoured."""
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """A (cached) boto3 client for ``service`` in this context's region."""
        if service not in self._clients:
            if self.aws_conn_id:
                from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook  # noqa: PLC0415 (lazy: loads airflow and boto3)

                hook = AwsBaseHook(
                    aws_conn_id=self.aws_conn_id, client_type=service, region_name=self.region
                )
                self._clients[service] = hook.get_client_type(region_name=self.region)
            else:
                self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    @cached_property
    def account_id(self) -> str:
        """The AWS account of the caller (STS GetCallerIdentity), unless overridden."""
        if self.account_override:
            return self.account_override
        return str(self.client("sts").get_caller_identity()["Account"])

    @property
    def partition(self) -> str:
        """ARN partition of the region (``aws`` for every EU region)."""
        return self.session.get_partition_for_region(self.region)


def make_context(
    region: str, *, profile: str | None = None, aws_conn_id: str | None = None
) -> AwsContext:
    """Build the session: Airflow connection if ``aws_conn_id``, else boto3's default chain."""
    validate_region(region)
    if aws_conn_id:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook  # noqa: PLC0415 (lazy: loads airflow and boto3)

        session = AwsBaseHook(aws_conn_id=aws_conn_id, region_name=region).get_session(
            region_name=region
        )
        return AwsContext(session=session, region=region, aws_conn_id=aws_conn_id)
    import boto3  # noqa: PLC0415 (lazy: loads boto3 and botocore)

    session = boto3.session.Session(profile_name=profile, region_name=region)
    return AwsContext(session=session, region=region)
