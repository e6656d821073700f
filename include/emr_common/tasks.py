"""The TaskFlow tasks both EMR DAGs share (cluster: ``fruits_emr_pipeline``; Serverless:
``fruits_emr_serverless_pipeline``): one definition, so the two cannot drift apart; and the
plain pieces of both DAGs' own task bodies (:mod:`include.emr.tasks`,
:mod:`include.emr_serverless.tasks`): the weights-file check, the watcher's failure.

Each takes the run's plan (``include.emr_common.plan.build_storage_plan`` keys, which both plans
carry). Heavy imports stay inside the task bodies: DAG files import this module at parse
time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from airflow.sdk import task

from include.params.plan_types import RunInfo, StoragePlan
from include.results.assets import FEATURES_ASSET, PCA_ASSET


@task
def validate_dataset(plan: StoragePlan) -> dict[str, Any]:
    """Fail fast when the dataset (folder, or S3 prefix: listed, not downloaded) is
    missing, empty or laid out wrongly."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.datasets.local import DatasetError
    from include.datasets.local import validate_dataset as validate_folder
    from include.datasets.s3 import S3DatasetError, validate_s3_dataset
    from include.staging.s3 import make_s3_hook

    try:
        if plan.get("dataset_uri"):
            hook = make_s3_hook(plan["aws_conn_id"])
            return validate_s3_dataset(hook, plan["dataset_uri"])
        summary = validate_folder(plan["dataset_dir"])
    except (DatasetError, S3DatasetError) as exc:
        raise AirflowFailException(str(exc)) from exc
    return summary.to_dict()


@task
def upload_dataset(plan: StoragePlan) -> dict[str, Any]:
    """Mirror the dataset to S3 (idempotent); return the upload summary."""
    from pathlib import Path

    from include.datasets.upload import upload_dataset as upload

    if plan.get("dataset_uri"):
        print(f"dataset {plan['dataset_uri']} is read in place: nothing to upload")
        return {"uri": plan["dataset_uri"], "uploaded": 0, "skipped": 0, "in_place": True}

    summary = upload(
        Path(plan["dataset_dir"]),
        plan["bucket"],
        plan["dataset_prefix"],
        aws_conn_id=plan["aws_conn_id"],
        pack=plan["pack_dataset"],
    )
    return summary.to_dict()


@task
def upload_job_package(plan: StoragePlan) -> dict[str, Any]:
    """Upload the Spark job (zip + entry script), bootstrap, requirements, weights file."""
    from include.emr_common.transfer import upload_job_package as upload

    return upload(plan)


@task
def build_report(run_dir: str, estimate: dict[str, Any] | None = None) -> str:
    """Write the run's HTML report (with the pre-run cost estimate) beside its results."""
    return write_report(run_dir, estimate)


def write_report(run_dir: str, estimate: Mapping[str, Any] | None = None) -> str:
    """The report of ``run_dir`` with the pre-run cost estimate; returns the HTML's path."""
    from include.costs.budget import write_estimate
    from include.results.report import build_report as build

    write_estimate(Path(run_dir), estimate)
    return str(build(Path(run_dir)))


@task(outlets=[PCA_ASSET, FEATURES_ASSET])
def publish_results(plan: StoragePlan, run_dir: str, run_info: RunInfo, **context: Any) -> None:
    """Manifest, fingerprint, estimate and report beside the S3 results; the
    last-success record; Asset events with the run's counts and fingerprint."""
    from include.results.publish import emr_publish

    dag_run = context["dag_run"]
    extras = emr_publish(plan, run_dir, run_info, dag_id=dag_run.dag_id, run_id=dag_run.run_id)
    context["outlet_events"][PCA_ASSET].extra = extras["pca"]
    context["outlet_events"][FEATURES_ASSET].extra = extras["features"]


# --- plain pieces of the DAGs' own task bodies ----------------------------------------------


def check_weights_file(plan: StoragePlan) -> None:
    """Fail (no retry) when the run's weights cannot be had before anything is staged: a
    local weights file that does not exist, or ``imagenet`` for a litert/onnx run whose
    converted model is neither in S3 nor in the worker's cache while this worker cannot get
    the ImageNet weights (``upload_job_package`` converts them here; offline it would fail
    minutes later, after the dataset upload and a retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.staging.model import imagenet_model_staged
    from include.staging.s3 import make_s3_hook
    from include.staging.weights import WeightsUnavailableError, check_run_weights

    if plan["weights_file"] and not Path(plan["weights_file"]).is_file():
        raise AirflowFailException(
            f"Invalid run settings: weights file {plan['weights_file']} does not exist"
        )
    job = plan["job"]
    if job["weights"] != "imagenet" or not plan["code_keys"].get("model"):
        return  # the keras runtime: the nodes download the ImageNet weights themselves
    staged = imagenet_model_staged(
        job["runtime"],
        job["image_size"],
        hook=make_s3_hook(plan["aws_conn_id"]),
        models_prefix=plan["models_prefix"],
        bucket=plan["bucket"],
    )
    if staged:
        print(f"weights: imagenet, its {job['runtime']} model is already converted")
        return
    try:
        decision = check_run_weights("imagenet", imagenet_loaded_here=True)
    except WeightsUnavailableError as exc:
        raise AirflowFailException(f"Invalid run settings: {exc}") from exc
    print(f"weights: {decision.reason}")


def fail_run(resource: str, created: str | None, *, teardown: str) -> NoReturn:
    """The watcher's body (it runs only when a task failed, maybe before the teardown has
    run): make the run end failed, saying what happens to what the run created.

    ``resource`` names what costs money ("cluster", "EMR Serverless application"),
    ``created`` its id when the create task recorded one, ``teardown`` the ALL_DONE task that
    removes it (and finds an unrecorded one by the run's tags). Claims nothing it did not see.
    """
    from airflow.sdk.exceptions import AirflowFailException

    if created:
        where = f"{resource} {created} is removed by {teardown}, which runs whatever failed"
    else:
        where = (
            f"no {resource} id was recorded (the run failed before creating one, or while "
            f"creating it: {teardown} looks for it by this run's tags)"
        )
    raise AirflowFailException(f"a task of this run failed; {where}")
