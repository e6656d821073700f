"""Fakes for EMR Serverless tests in moto: applications created through the API, then aged
or given a job run in a chosen state in moto's backend (moto starts applications at once,
finishes job runs at once, and stamps every date at midnight of today)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

RELEASE_LABEL = "emr-7.12.0"


def backend(region: str) -> Any:
    """moto's EMR Serverless backend of the default account in ``region``."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emrserverless.models import emrserverless_backends

    return emrserverless_backends[DEFAULT_ACCOUNT_ID][region]


def create_application(
    client: Any,
    *,
    name: str,
    tags: Mapping[str, str],
    age_hours: float,
    state: str | None = None,
) -> str:
    """A Spark application created ``age_hours`` ago (and not changed since); its id.

    moto makes it STARTED; ``state`` sets another one (e.g. STOPPED, CREATING) in the backend.
    """
    app_id = client.create_application(
        name=name, releaseLabel=RELEASE_LABEL, type="SPARK", tags=dict(tags)
    )["applicationId"]
    region = client.meta.region_name
    app = backend(region).applications[app_id]
    # moto keeps naive UTC datetimes.
    app.created_at = app.updated_at = (datetime.now(UTC) - timedelta(hours=age_hours)).replace(
        tzinfo=None
    )
    if state:
        app.state = state
    return app_id


def start_job_run(client: Any, app_id: str, *, state: str, age_hours: float = 0.5) -> str:
    """A job run of the application in ``state`` (moto makes it SUCCESS at once); its id."""
    from moto.core import DEFAULT_ACCOUNT_ID

    run_id = client.start_job_run(
        applicationId=app_id,
        executionRoleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/job",
        jobDriver={"sparkSubmit": {"entryPoint": "s3://bucket/job.py"}},
    )["jobRunId"]
    (run,) = [r for r in backend(client.meta.region_name).job_runs[app_id] if r.id == run_id]
    run.state = state
    run.created_at = run.updated_at = (datetime.now(UTC) - timedelta(hours=age_hours)).replace(
        tzinfo=None
    )
    return run_id


def application_state(client: Any, app_id: str) -> str:
    """The state through the API (TERMINATED once deleted: moto keeps deleted applications)."""
    return client.get_application(applicationId=app_id)["application"]["state"]
