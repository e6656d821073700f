"""The Serverless DAG's task bodies (include/emr_serverless/tasks.py) called directly: no
DAG, no Airflow context; AWS is moto. The download's are in test_operators.py."""

from __future__ import annotations

import pytest

from include.emr_serverless import tasks
from include.params.serverless import serverless_params

REGION = "eu-west-1"
BUCKET = "fruits-test-bucket"
DAG_ID = "fruits_emr_serverless_pipeline"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
FAST = {"poke_interval_seconds": 1, "job_timeout_seconds": 60, "weights": "none"}

BAD_PARAMS = {
    # case: (Params, extra environment, expected message)
    "pca both empty": ({"pca_variance": None, "pca_k": None}, {}, "set either pca_variance"),
    "weights file missing": ({"weights": "/nonexistent/w.h5"}, {}, "weights file /nonexistent"),
    "memory outside worker size": ({"executor_memory_gb": 31}, {}, "allows 8-30 GB"),
    "memory step": ({"executor_vcpu": 8, "executor_memory_gb": 18}, {}, "in steps of 4 GB"),
    "keras on ARM64": ({"runtime": "keras", "architecture": "ARM64"}, {}, "cannot run on ARM64"),
    "executor too small": (
        {"runtime": "keras", "executor_vcpu": 4, "executor_memory_gb": 8, "batch_size": 256},
        {},
        "raise executor_memory_gb",
    ),
    "count given as bool": ({"executors": True}, {}, "executors must be an integer"),
    "release not emr-7": ({"release_label": "emr-6.15.0"}, {}, "emr-7.x label"),
    "region outside EU": ({}, {"FRUITS_REGION": "us-east-1"}, "EU only"),
}


def _params(**conf):
    return {**{name: p.value for name, p in serverless_params().items()}, **FAST, **conf}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_validate_params_rejects_with_clear_message(case, run_env, assert_refused):
    """Bad settings become one clear, non-retried failure."""
    conf, environment, message = BAD_PARAMS[case]
    assert_refused(
        lambda params: tasks.validate_params(params, dag_id=DAG_ID, run_id=RUN_ID),
        _params(**conf),
        environment,
        message,
    )


def test_validate_params_plans_the_run(run_env):
    plan = tasks.validate_params(_params(), dag_id=DAG_ID, run_id=RUN_ID)
    assert plan["bucket"] == BUCKET
    assert plan["region"] == REGION
    assert plan["application_tags"]["run_id"] == RUN_ID
    assert plan["application_tags"]["dag_id"] == DAG_ID
