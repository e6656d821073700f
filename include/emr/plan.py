"""Pure builders of one EMR run: the run plan, the ``RunJobFlow`` request and the Spark step.

* :func:`build_run_plan` turns validated settings + configuration + run id into everything
  a run needs (S3 keys, the cluster request, the Spark step) as plain JSON data.
* :func:`build_job_flow_overrides`, :func:`build_spark_step` and :func:`build_pack_step`
  are pure: they return new dicts (``RunJobFlow`` request and ``AddJobFlowSteps`` steps)
  and never mutate shared data.

No AWS calls and no operator imports here: the DAG file and the CLI import this cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from include.capacity.cluster_sizing import size_executors
from include.config import CREATE_WAIT_SECONDS, PROJECT_TAG, PipelineConfig
from include.emr_common.plan import build_storage_plan, job_spark_defaults, run_tags
from include.params.job_args import (
    JobSettings,
    build_job_arguments,
)
from include.params.plan_types import ClusterPlan

if TYPE_CHECKING:
    from include.params.cluster import EmrSettings

NODE_PYTHON = "/usr/bin/python3.11"
"""EMR 7.x nodes carry Python 3.9 (default) and 3.11; the job and its wheels need 3.11."""


ROOT_VOLUME_GIB = 32
"""EbsRootVolumeSize of every node: the AMI's own use plus the job's install (wheels copied,
then unpacked ~3x); ``include.staging.wheelhouse.check_fits`` refuses a wheelhouse that needs
more."""


REQUEST_DIGEST_TAG = "request_sha256"
"""Tag with a digest of the ``RunJobFlow`` request (tags aside): a retry of a failed create
is refused only while the request is the same one that already failed."""


def request_digest(overrides: Mapping[str, Any]) -> str:
    """A digest of a ``RunJobFlow`` request without its ``Tags`` (what decides the outcome)."""
    body = {key: value for key, value in overrides.items() if key != "Tags"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]


def build_job_flow_overrides(
    settings: EmrSettings,
    config: PipelineConfig,
    *,
    name: str,
    tags: Mapping[str, str],
    bootstrap_uri: str,
    requirements_uri: str,
    wheelhouse_uri: str | None = None,
) -> dict[str, Any]:
    """The ``RunJobFlow`` request of one run's cluster (a new dict each call).

    Spark + Livy on an emr-7.x release, 1 on-demand master + N core nodes (spot or
    on-demand), logs to ``config.log_uri``, a bootstrap action installing the job's
    requirements with Python 3.11 (from ``wheelhouse_uri`` with ``--no-index`` when given,
    else from PyPI), a root volume sized for that install, idle auto-termination as a cost
    backstop, tags, and ``config.emr_security_configuration`` when set (encryption at rest).
    The cluster stays up between steps (``KeepJobFlowAliveWhenNoSteps``): the DAG's
    terminate task ends it, or the idle timeout does if Airflow never gets there.
    """
    instances: dict[str, Any] = {
        "InstanceGroups": [
            {
                "Name": "Primary",
                "Market": "ON_DEMAND",
                "InstanceRole": "MASTER",
                "InstanceType": settings.instance_type,
                "InstanceCount": 1,
            },
            {
                "Name": "Core",
                "Market": "SPOT" if settings.spot_core_nodes else "ON_DEMAND",
                "InstanceRole": "CORE",
                "InstanceType": settings.instance_type,
                "InstanceCount": settings.core_nodes,
            },
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    }
    if config.subnet_id:
        instances["Ec2SubnetId"] = config.subnet_id
    python_env = {"PYSPARK_PYTHON": NODE_PYTHON, "PYSPARK_DRIVER_PYTHON": NODE_PYTHON}
    request: dict[str, Any] = {
        "Name": name[:256],
        "ReleaseLabel": settings.release_label,
        "Applications": [{"Name": "Spark"}, {"Name": "Livy"}],
        "LogUri": config.log_uri,
        "Instances": instances,
        "BootstrapActions": [
            {
                "Name": "install-job-requirements",
                "ScriptBootstrapAction": {
                    "Path": bootstrap_uri,
                    "Args": [requirements_uri, *([wheelhouse_uri] if wheelhouse_uri else [])],
                },
            }
        ],
        "Configurations": [
            {
                "Classification": "spark-env",
                "Properties": {},
                "Configurations": [
                    {"Classification": "export", "Properties": dict(python_env)},
                ],
            },
            {
                "Classification": "spark-defaults",
                "Properties": {
                    "spark.pyspark.python": NODE_PYTHON,
                    "spark.pyspark.driver.python": NODE_PYTHON,
                    **job_spark_defaults(settings.job),
                },
            },
            {
                "Classification": "livy-conf",
                "Properties": {
                    "livy.server.session.timeout-check": "true",
                    "livy.server.session.timeout": "1h",
                },
            },
        ],
        "EbsRootVolumeSize": ROOT_VOLUME_GIB,
        "AutoTerminationPolicy": {"IdleTimeout": settings.idle_timeout_minutes * 60},
        "JobFlowRole": config.emr_instance_profile,
        "ServiceRole": config.emr_service_role,
        "VisibleToAllUsers": True,
        "StepConcurrencyLevel": 1,
    }
    if config.emr_security_configuration:
        request["SecurityConfiguration"] = config.emr_security_configuration
    all_tags = {**tags, REQUEST_DIGEST_TAG: request_digest(request)}
    request["Tags"] = [{"Key": key, "Value": value} for key, value in sorted(all_tags.items())]
    return request


def _spark_submit(
    *, py_files_uri: str, entry_script_uri: str, spark_conf: Mapping[str, str] | None
) -> list[str]:
    """``spark-submit ... entrypoint.py`` for ``command-runner.jar`` (client deploy mode)."""
    return [
        "spark-submit",
        "--deploy-mode",
        "client",
        "--master",
        "yarn",
        "--conf",
        f"spark.pyspark.python={NODE_PYTHON}",
        *(
            arg
            for key, value in sorted((spark_conf or {}).items())
            for arg in ("--conf", f"{key}={value}")
        ),
        "--py-files",
        py_files_uri,
        entry_script_uri,
    ]


def build_spark_step(
    job: JobSettings,
    *,
    name: str,
    entry_script_uri: str,
    py_files_uri: str,
    input_uri: str,
    output_uri: str,
    run_id: str,
    model_uri: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
    feature_cache_uri: str | None = None,
) -> dict[str, Any]:
    """One ``AddJobFlowSteps`` step running the job with spark-submit (a new dict each call).

    ``spark_conf``: the executors' sizing (``include/capacity/cluster_sizing.py``), as ``--conf``.

    Arguments are a list for ``command-runner.jar`` (never a shell string). Client deploy
    mode keeps the driver's Python traceback in the step's stderr, which the sensor shows
    in the Airflow log when the step fails. ``CONTINUE`` on failure: the DAG's terminate
    task ends the cluster after the failure was logged.
    """
    args = [
        *_spark_submit(
            py_files_uri=py_files_uri, entry_script_uri=entry_script_uri, spark_conf=spark_conf
        ),
        *build_job_arguments(
            job,
            input_uri=input_uri,
            output_uri=output_uri,
            run_id=run_id,
            model_uri=model_uri,
            feature_cache_uri=feature_cache_uri,
        ),
    ]
    return {
        "Name": name[:256],
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


PACK_STEP_NAME = "pack the S3 dataset into parquet shards"


def build_pack_step(
    *,
    entry_script_uri: str,
    py_files_uri: str,
    source_uri: str,
    dest_uri: str,
    shard_mb: int = 128,
) -> dict[str, Any]:
    """The step packing an S3 image folder into shards on the cluster (``spark_jobs.pack_step``).

    ``CANCEL_AND_WAIT`` on failure: the feature step after it, which would read shards
    that were never written, is cancelled instead of run.
    """
    args = [
        *_spark_submit(py_files_uri=py_files_uri, entry_script_uri=entry_script_uri, spark_conf={}),
        "pack",
        "--input",
        source_uri,
        "--output",
        dest_uri.rstrip("/"),
        "--shard-mb",
        str(shard_mb),
    ]
    return {
        "Name": PACK_STEP_NAME,
        "ActionOnFailure": "CANCEL_AND_WAIT",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def build_run_plan(
    settings: EmrSettings,
    config: PipelineConfig,
    *,
    dag_id: str,
    run_id: str,
    wheelhouse_digest: str | None = None,
) -> ClusterPlan:
    """Everything one run needs, as JSON data: where things go in S3, the cluster and the step.

    Pure: the same inputs give the same plan, so every task of a run (and its retries)
    agree on the keys. Local dataset/weights paths are checked by the tasks that read them.
    With ``wheelhouse_digest`` (``include.staging.wheelhouse.wheelhouse_digest`` of the node
    requirements), the nodes install from ``<prefix>/wheelhouse/<digest>/`` without PyPI.
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
    rid, bucket, code = storage["run_key"], storage["bucket"], storage["code_keys"]
    prefix = config.prefix.strip("/")

    def uri(key: str) -> str:
        return f"s3://{bucket}/{key}"

    executors = size_executors(
        settings.instance_type,
        settings.core_nodes,
        runtime=settings.job.runtime,
        batch_size=settings.job.batch_size,
        image_size=settings.job.image_size,
    )
    # The job splits its work by the cluster's slots, not by the executors registered
    # when it starts.
    job = JobSettings(**{**storage["job"], "task_slots": executors.task_slots})
    tags = run_tags(dag_id=dag_id, run_id=run_id, extra=config.extra_tags)
    name = f"{PROJECT_TAG} {dag_id} {rid}"
    wheelhouse = None
    if wheelhouse_digest:
        key_prefix = f"{prefix}/wheelhouse/{wheelhouse_digest}"
        wheelhouse = {"digest": wheelhouse_digest, "key_prefix": key_prefix, "uri": uri(key_prefix)}
    return {
        **storage,
        # An S3 dataset packed on the cluster, one folder per listing (include/datasets/s3.py).
        "s3_packed_prefix": f"{prefix}/dataset/s3-packed",
        "job": asdict(job),
        "executors": executors.as_dict(),
        "log_uri": config.log_uri,
        "wheelhouse": wheelhouse,
        "root_volume_gib": ROOT_VOLUME_GIB,
        "tags": tags,
        "deferrable": settings.deferrable,
        "poke_interval": settings.poke_interval_seconds,
        # A cluster takes ~10 minutes to start and bootstrap; allow it 45.
        "create_max_attempts": max(1, CREATE_WAIT_SECONDS // settings.poke_interval_seconds),
        "wait": {
            "poke_interval": settings.poke_interval_seconds,
            "timeout": settings.step_timeout_seconds,
            "log_wait": settings.step_log_wait_seconds,
        },
        "job_flow_overrides": build_job_flow_overrides(
            settings,
            config,
            name=name,
            tags=tags,
            bootstrap_uri=uri(code["bootstrap"]),
            requirements_uri=uri(code["requirements"]),
            wheelhouse_uri=wheelhouse["uri"] if wheelhouse else None,
        ),
        "steps": [
            build_spark_step(
                job,
                name=f"extract features + PCA ({settings.job.mode})",
                entry_script_uri=storage["uris"]["entry_script"],
                py_files_uri=storage["uris"]["py_files"],
                input_uri=storage["uris"]["input"],
                output_uri=storage["uris"]["output"],
                run_id=rid,
                model_uri=storage["uris"]["model"],
                spark_conf=executors.spark_conf(),
                feature_cache_uri=config.feature_cache_uri if settings.feature_cache else None,
            )
        ],
    }
