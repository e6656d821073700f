"""The Serverless DAG against the offline EMR (``emr_emulator``), running the REAL Spark job.

The emulator runs EMR Serverless applications and job runs for real: the job driver's own
entry script, zip and arguments on local Spark, logs under AWS's layout, billed resources.
The job's packed environment is the tests' small stand-in (a tar.gz with ``bin/python``, not
built for this machine), so the emulator runs the job with its own interpreter, as it runs
cluster steps; ``tests/emr_emulator/test_serverless.py`` covers a real packed environment.
The fast orchestration cases stay in ``test_fruits_emr_serverless_pipeline.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.dags.test_fruits_emr_serverless_pipeline import (
    BUCKET,
    DAG_ID,
    PREFIX,
    REGION,
    fake_env_build,
    run_dag,
)
from tests.emr_fakes import airflow_identity, step_arg

# IAM enforced: the DAGs run as an IAM user holding only the Airflow policy create-roles
# renders, their jobs' S3 traffic as the instance profile / job runtime role.
pytestmark = [pytest.mark.slow, pytest.mark.enforce_iam]

EMU_PARAMS = {
    "poke_interval_seconds": 1,
    "job_timeout_seconds": 900,
    "job_log_wait_seconds": 30,
    "weights": "none",
}


@pytest.fixture
def emulated_aws(emr_emulator, monkeypatch, tmp_path) -> Iterator[dict[str, Any]]:
    """The pipeline's AWS connection pointed at the emulator; its account prepared."""
    emr_emulator.settings.app_create_s = 0.3
    emr_emulator.settings.job_queue_s = 0.1
    results = tmp_path / "results"
    monkeypatch.setenv("FRUITS_BUCKET", BUCKET)
    monkeypatch.setenv("FRUITS_PREFIX", PREFIX)
    monkeypatch.setenv("FRUITS_REGION", REGION)
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(results))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        airflow_identity(emr_emulator, REGION, bucket=BUCKET, prefix=PREFIX),
    )
    monkeypatch.setattr("include.staging.serverless_env.build_packed_env", fake_env_build)
    yield {
        "results": results,
        "s3": emr_emulator.s3_client(),
        "serverless": emr_emulator.client("emr-serverless"),
    }
    assert emr_emulator.iam.checked > 0  # the DAG really ran as the Airflow IAM user


@pytest.fixture
def real_serverless_dag(dagbag, airflow_db, monkeypatch):
    """The Serverless DAG as shipped (the real job package), retry delays zeroed."""
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag


def _only_job_run(serverless) -> tuple[dict[str, Any], dict[str, Any]]:
    (app,) = serverless.list_applications()["applications"]
    (summary,) = serverless.list_job_runs(applicationId=app["id"])["jobRuns"]
    run = serverless.get_job_run(applicationId=app["id"], jobRunId=summary["id"])["jobRun"]
    return app, run


def test_real_job_through_the_serverless_dag(real_serverless_dag, emulated_aws, sample_dataset):
    state, tasks = run_dag(
        real_serverless_dag, dataset_dir=str(sample_dataset), pack_dataset=True, **EMU_PARAMS
    )
    assert state == "success", tasks

    app, run = _only_job_run(emulated_aws["serverless"])
    assert app["state"] == "TERMINATED"  # the run's own application, deleted by the DAG
    assert run["state"] == "SUCCESS"
    billed = run["billedResourceUtilization"]
    assert billed["vCPUHour"] > 0
    assert billed["memoryGBHour"] > 0
    args = run["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    assert step_arg(args, "--input").endswith(f"/datasets/{sample_dataset.name}/packed/")

    run_dir = (
        emulated_aws["results"] / "fruits_emr_serverless_pipeline" / step_arg(args, "--run-id")
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    images = [p for p in sample_dataset.rglob("*") if p.suffix.lower() in (".jpg", ".png")]
    assert metrics["counts"]["valid_images"] == len(images)
    assert metrics["counts"]["by_label"] == dict(Counter(p.parent.name for p in images))
    assert list((run_dir / "pca").glob("*.parquet"))
    saved = json.loads((run_dir / "job_run.json").read_text())
    assert saved["jobRun"]["billedResourceUtilization"] == billed
    html = (run_dir / "report" / "report.html").read_text()
    assert "EMR Serverless cost" in html
    assert f"{billed['vCPUHour']:.4f}" in html


def test_a_failing_job_run_shows_the_drivers_reason_and_is_cleaned_up(
    real_serverless_dag, emulated_aws, tmp_path, monkeypatch
):
    import include.emr_serverless.operators

    reports: list[str] = []
    original = include.emr_serverless.operators.describe_job_run_failure

    def spy(*args: Any, **kwargs: Any) -> str:
        reports.append(original(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(include.emr_serverless.operators, "describe_job_run_failure", spy)
    broken = tmp_path / "broken-fruits"
    for label in ("Apple", "Kiwi"):
        folder = broken / "Training" / label
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"{i}.jpg").write_bytes(b"not a jpeg at all " * 20)

    state, tasks = run_dag(
        real_serverless_dag, dataset_dir=str(broken), pack_dataset=False, **EMU_PARAMS
    )
    assert state == "failed", tasks
    assert tasks["wait_for_job_run"] == "failed"
    assert tasks["delete_emr_serverless_application"] == "success"
    assert tasks["download_results"] == "upstream_failed"
    app, run = _only_job_run(emulated_aws["serverless"])
    assert run["state"] == "FAILED"
    assert app["state"] == "TERMINATED"
    (report,) = reports
    assert "is FAILED" in report
    assert "SPARK_DRIVER/stderr.gz" in report
    assert "error: " in report  # the job's own message, from the driver's log


def test_an_application_that_never_ran_a_job_is_deleted(
    real_serverless_dag, emulated_aws, sample_dataset, monkeypatch
):
    """StartJobRun never happens: the CREATED application is deleted without the stop AWS
    (and the emulator) refuse for an application that is not started."""
    import include.emr_serverless.operators as operators

    def fail(self, context, *args, **kwargs):
        raise RuntimeError("injected: start_job_run failed before StartJobRun")

    monkeypatch.setattr(operators.EmrServerlessStartJobOnceOperator, "execute", fail)
    state, tasks = run_dag(
        real_serverless_dag, dataset_dir=str(sample_dataset), pack_dataset=False, **EMU_PARAMS
    )
    assert state == "failed", tasks
    assert tasks["start_job_run"] == "failed"
    assert tasks["delete_emr_serverless_application"] == "success", tasks
    serverless = emulated_aws["serverless"]
    (app,) = serverless.list_applications()["applications"]
    assert app["state"] == "TERMINATED"
