"""The pipeline DAGs' ``preflight`` task bodies: the checks of :mod:`include.infra.preflight`
run for a run's plan, with the plan's AWS connection, before anything that costs money.

Every check is logged; any failed one fails the task without a retry, naming each. Plain
functions, called by the DAGs' tasks in a line; heavy imports (the provider's hook,
botocore through the checks) stay inside them: the DAG files import this module at parse
time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from include.params.plan_types import ClusterPlan, ServerlessPlan, ServerlessPreflight, StoragePlan


def aws_clients(plan: StoragePlan) -> Callable[[str], Any]:
    """``client(service)``: a boto3 client of the plan's connection and region."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    def client(service: str) -> Any:
        return AwsBaseHook(
            aws_conn_id=plan["aws_conn_id"], region_name=plan["region"], client_type=service
        ).conn

    return client


def refuse_failed_checks(checks: Iterable[Any]) -> list[dict[str, Any]]:
    """Log every check; fail (no retry) naming each failed one; else the checks as dicts."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.infra.preflight import failures

    checks = list(checks)
    for check in checks:
        print(check.line())
    failed = failures(checks)
    if failed:
        raise AirflowFailException(
            "preflight failed, nothing was created: " + "; ".join(c.line() for c in failed)
        )
    return [c.to_dict() for c in checks]


def preflight_cluster(plan: ClusterPlan) -> list[dict[str, Any]]:
    """The cluster DAG's: roles, subnet, instance type, vCPU quota, bucket and network, for
    the plan's ``RunJobFlow`` request."""
    from include.infra.preflight import ClusterRequest, run_preflight

    request = ClusterRequest.from_overrides(
        plan["job_flow_overrides"],
        region=plan["region"],
        bucket=plan["bucket"],
        install_from_s3_only=plan["wheelhouse"] is not None,
    )
    return refuse_failed_checks(run_preflight(aws_clients(plan), request))


def preflight_serverless_run(plan: ServerlessPlan) -> ServerlessPreflight:
    """The Serverless DAG's: the bucket and the job runtime role; returns the checks and the
    role's ARN (``StartJobRun`` takes the ARN; the plan may name the role)."""
    from include.infra.preflight import ServerlessRequest, preflight_serverless

    client = aws_clients(plan)
    role = plan["execution_role"]
    request = ServerlessRequest(region=plan["region"], bucket=plan["bucket"], job_role=role)
    checks = refuse_failed_checks(preflight_serverless(client, request))
    if not role.startswith("arn:"):
        role = client("iam").get_role(RoleName=request.job_role_name)["Role"]["Arn"]
    return {"checks": checks, "job_role_arn": role}
