"""Pure builders of one EMR Serverless run: the plan, the application request, the job driver.

* :func:`build_application_request` — the ``CreateApplication`` request: release, SPARK,
  architecture, auto-start, auto-stop after an idle timeout (the cost backstop), a
  ``maximumCapacity`` of exactly the run's workers, and tags.
* :func:`build_job_driver` — the ``sparkSubmit`` job driver: the same entry script, zip and
  arguments (``include.params.job_args.build_job_arguments``) as the cluster's Spark step.
* :func:`build_serverless_run_plan` — everything a run needs, as JSON data, on top of the
  storage plan both EMR DAGs share (``include.emr_common.plan.build_storage_plan``).

No AWS calls and no operator imports here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from include.config import PROJECT_TAG, PipelineConfig
from include.emr_common.plan import build_storage_plan, job_spark_defaults, run_tags, tag_value
from include.emr_serverless.applications import CANCELLABLE_JOB_RUN_STATES
from include.params.job_args import JobSettings, build_job_arguments
from include.params.plan_types import ServerlessPlan

if TYPE_CHECKING:
    from include.params.serverless import ServerlessSettings

SCOPE_TAG = "application_scope"
"""``run``: the application belongs to one run (deleted by it); ``shared``: reused by runs
with the same configuration (stopped, never deleted by a run)."""
CONFIG_TAG = "application_config"
"""A digest of the application request (tags aside): a shared application is reused only
by runs that would have created the same one."""
JOB_RUN_STATES_REUSABLE = (*CANCELLABLE_JOB_RUN_STATES, "SUCCESS")
"""A job run of this run in one of these states (QUEUED included) is not started again by a
retry."""
_NAME_MAX = 64


@functools.cache
def _model_rule(shape: str) -> dict[str, Any]:
    """The constraints (``min``, ``max``, ``pattern``) of one shape of botocore's model of
    EMR Serverless: the request rules AWS checks, read from the SDK, not copied by hand."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("emr-serverless")
    return dict(model.shape_for(shape).metadata)


def serverless_tag_value(value: str) -> str:
    """``value`` as an EMR Serverless tag value: characters outside botocore's ``TagValue``
    pattern (``[A-Za-z0-9 /_.:=+@-]*``, max 256 in botocore 1.43: ASCII only, unlike EMR's
    tag values) become ``_``."""
    rule = _model_rule("TagValue")
    return tag_value(value, allowed=re.compile(rule["pattern"]), max_length=int(rule["max"]))


EXECUTION_TIMEOUT_MIN_MINUTES = 5
"""The service refuses 1-4 minutes ("RunTimeout must be at least 5 minutes.", the
ValidationException moto 5.2.5 reproduces), though botocore's model allows them."""


def execution_timeout_minutes(timeout_seconds: float) -> int:
    """``StartJobRun.executionTimeoutMinutes`` for a wait of ``timeout_seconds``: whole
    minutes, rounded up, within botocore's ``Duration`` bounds (0 to 1,000,000 in botocore
    1.43), at least the service's 5 minutes, and never 0, which means "never time out" (EMR
    Serverless User Guide, "Other considerations"): the backstop must always stop the run."""
    rule = _model_rule("Duration")
    minutes = math.ceil(max(timeout_seconds, 0) / 60)
    low = max(int(rule["min"]), EXECUTION_TIMEOUT_MIN_MINUTES)
    return min(max(minutes, low), int(rule["max"]))


def serverless_run_tags(
    *, dag_id: str, run_id: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The run's tags (``include.emr_common.plan.run_tags``) with EMR Serverless's value rule."""
    return run_tags(dag_id=dag_id, run_id=run_id, extra=extra, value=serverless_tag_value)


def application_config_digest(request: Mapping[str, Any]) -> str:
    body = {key: value for key, value in request.items() if key not in ("tags", "name")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def build_application_request(
    settings: ServerlessSettings,
    *,
    dag_id: str,
    run_id: str,
    extra_tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``CreateApplication`` request of the run's application (a new dict each call).

    A per-run application is named and tagged after the run (Project, dag_id, run_id, as the
    cluster's, ``include.emr_common.plan.run_tags``); a shared one after its configuration digest.
    """
    request: dict[str, Any] = {
        "releaseLabel": settings.release_label,
        "type": "SPARK",
        "architecture": settings.architecture,
        "autoStartConfiguration": {"enabled": True},
        "autoStopConfiguration": {
            "enabled": True,
            "idleTimeoutMinutes": settings.idle_timeout_minutes,
        },
        "maximumCapacity": settings.sizing.maximum_capacity(),
    }
    digest = application_config_digest(request)
    if settings.reuse_application:
        name = f"{PROJECT_TAG}-shared-{digest}"
        tags = {
            **(extra_tags or {}),
            "Project": PROJECT_TAG,
            "dag_id": serverless_tag_value(dag_id),
            SCOPE_TAG: "shared",
        }
    else:
        run_hash = hashlib.sha256(run_id.encode()).hexdigest()[:12]
        name = f"{PROJECT_TAG}-run-{run_hash}"
        tags = {
            **serverless_run_tags(dag_id=dag_id, run_id=run_id, extra=extra_tags),
            SCOPE_TAG: "run",
        }
    tags[CONFIG_TAG] = digest
    return {"name": name[:_NAME_MAX], **request, "tags": tags}


def identity_tags(request: Mapping[str, Any]) -> dict[str, str]:
    """The tags that find the run's application again (a retry, the teardown)."""
    tags = request["tags"]
    keys = ["Project", SCOPE_TAG, CONFIG_TAG]
    if tags.get(SCOPE_TAG) == "run":
        keys += ["dag_id", "run_id"]
    return {key: tags[key] for key in keys}


def spark_submit_parameters(conf: Mapping[str, str], *, py_files_uri: str) -> str:
    """``sparkSubmitParameters``: ``--conf k=v`` (sorted) then ``--py-files``.

    EMR Serverless splits this string on spaces (AWS's examples quote nothing, e.g.
    ``spark.archives=s3://...#environment``), so a value holding whitespace is refused
    instead of being split into two arguments.
    """
    parts = [arg for key in sorted(conf) for arg in ("--conf", f"{key}={conf[key]}")]
    parts += ["--py-files", py_files_uri]
    spaced = [part for part in parts if not part or any(c.isspace() for c in part)]
    if spaced:
        raise ValueError(f"spark-submit parameters must not hold whitespace: {spaced}")
    return " ".join(parts)


def build_job_driver(
    job: JobSettings,
    *,
    entry_script_uri: str,
    py_files_uri: str,
    input_uri: str,
    output_uri: str,
    run_id: str,
    model_uri: str | None,
    spark_conf: Mapping[str, str],
    feature_cache_uri: str | None = None,
) -> dict[str, Any]:
    """The ``StartJobRun`` job driver (a new dict each call)."""
    return {
        "sparkSubmit": {
            "entryPoint": entry_script_uri,
            "entryPointArguments": build_job_arguments(
                job,
                input_uri=input_uri,
                output_uri=output_uri,
                run_id=run_id,
                model_uri=model_uri,
                feature_cache_uri=feature_cache_uri,
            ),
            "sparkSubmitParameters": spark_submit_parameters(spark_conf, py_files_uri=py_files_uri),
        }
    }


def job_driver_for(plan: ServerlessPlan, env_conf: Mapping[str, str]) -> dict[str, Any]:
    """The plan's job driver once the Python environment is staged (``env_conf``: the
    confs of ``include.staging.serverless_env.spark_submit_conf``)."""
    uris = plan["uris"]
    return build_job_driver(
        JobSettings(**plan["job"]),
        entry_script_uri=uris["entry_script"],
        py_files_uri=uris["py_files"],
        input_uri=uris["input"],
        output_uri=uris["output"],
        run_id=plan["run_key"],
        model_uri=uris["model"],
        spark_conf={**plan["spark_conf"], **env_conf},
        feature_cache_uri=plan.get("feature_cache_uri"),
    )


def build_serverless_run_plan(
    settings: ServerlessSettings,
    config: PipelineConfig,
    *,
    dag_id: str,
    run_id: str,
    dataset_uri: str | None = None,
) -> ServerlessPlan:
    """Everything one Serverless run needs, as JSON data. Pure.

    ``dataset_uri``: a dataset read in place (the job's ``--input``; nothing is uploaded).
    """
    storage = build_storage_plan(
        settings.job,
        config,
        dag_id=dag_id,
        run_id=run_id,
        dataset_dir=settings.dataset_dir,
        pack_dataset=settings.pack_dataset,
        download_features=settings.download_features,
    )
    if dataset_uri:
        storage["dataset_uri"] = dataset_uri
        storage["dataset_prefix"] = None
        storage["uris"] = {**storage["uris"], "input": dataset_uri}
    sizing = settings.sizing
    job = JobSettings(**{**storage["job"], "task_slots": sizing.task_slots})
    application = build_application_request(
        settings, dag_id=dag_id, run_id=run_id, extra_tags=config.extra_tags
    )
    tags = serverless_run_tags(dag_id=dag_id, run_id=run_id, extra=config.extra_tags)
    return {
        **storage,
        "job": asdict(job),
        "sizing": sizing.as_dict(),
        "spark_conf": {**job_spark_defaults(job), **sizing.spark_conf()},
        "architecture": settings.architecture,
        "feature_cache_uri": config.feature_cache_uri if settings.feature_cache else None,
        "env_prefix": config.prefix.strip("/"),
        "application": application,
        "application_tags": identity_tags(application),
        # Flat keys: the DAG passes each to an operator (an XComArg indexes one level).
        "job_run_name": f"{PROJECT_TAG} {dag_id} {storage['run_key']}"[:256],
        "execution_role": config.serverless_job_role,
        "job_run_overrides": {
            "monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": config.serverless_log_uri}
            }
        },
        "job_run_config": {
            "tags": tags,
            # EMR Serverless cancels the job run itself past this: a backstop that works
            # when Airflow is gone.
            "executionTimeoutMinutes": execution_timeout_minutes(settings.job_timeout_seconds),
        },
        "log_uri": config.serverless_log_uri,
        "tags": tags,
        "deferrable": settings.deferrable,
        "poke_interval": settings.poke_interval_seconds,
        "wait": {
            "poke_interval": settings.poke_interval_seconds,
            "timeout": settings.job_timeout_seconds,
            "log_wait": settings.job_log_wait_seconds,
        },
    }
