"""Task body of the sweeper DAG (``fruits_emr_sweeper``) for EMR Serverless: this project's
stale, unused applications stopped and deleted
(:func:`include.emr_serverless.applications.sweep_applications`).

A plain function, called by the DAG's task in a line or two. Heavy imports (the provider's
hook, botocore) stay inside it: the DAG file imports this module at parse time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

STOP_WAIT = {"Delay": 15, "MaxAttempts": 40}
"""Stopping takes up to a few minutes on AWS; 10 minutes is the bound."""


def sweep_serverless_applications(
    params: Mapping[str, Any], get_dagrun_state: Callable[[str, str], str]
) -> list[dict[str, str]]:
    """Stop and delete this project's stale, unused EMR Serverless applications (only list
    them with the ``dry_run`` Param); one that cannot be removed fails the task, naming it."""
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

    from include.config import PROJECT_TAG, load_config
    from include.emr_common.runs import sweep_cutoff
    from include.emr_serverless.applications import sweep_applications

    config = load_config()
    ttl, cutoff = sweep_cutoff(params, config.cluster_ttl_hours)
    hook = EmrServerlessHook(aws_conn_id=config.aws_conn_id, region_name=config.region)

    def wait_stopped(application_id: str) -> None:
        hook.get_waiter("serverless_app_stopped").wait(
            applicationId=application_id, WaiterConfig=STOP_WAIT
        )

    swept = sweep_applications(
        hook.conn,
        project_tag=PROJECT_TAG,
        idle_since_before=cutoff,
        get_dagrun_state=get_dagrun_state,
        wait_stopped=wait_stopped,
        dry_run=bool(params.get("dry_run")),
        log=print,
    )
    print(f"{len(swept)} application(s) tagged Project={PROJECT_TAG} older than {ttl} h: {swept}")
    return swept
