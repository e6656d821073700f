"""The XCom contract between a DAG's tasks, typed: the run plan and the other dicts tasks pass.

One module for the three pipeline DAGs. The plan is built once by the first task
(``validate_params``) and read by every later one:

* :class:`StoragePlan`: what both EMR plans share
  (:func:`include.emr_common.plan.build_storage_plan`);
* :class:`ClusterPlan`: the EMR cluster DAG's (:func:`include.emr.plan.build_run_plan`,
  :func:`include.emr.dataset_steps.plan_for_s3_dataset`);
* :class:`ServerlessPlan`: the EMR Serverless DAG's
  (:func:`include.emr_serverless.plan.build_serverless_run_plan`).

The local DAG has no plan: its ``validate_dataset`` returns a :class:`LocalDataset` and its
``prepare_spark_job`` a :class:`LocalJob`. Every DAG's ``skip_if_unchanged`` returns a
:class:`RunInfo` (or None: skip). They are TypedDicts: plain dicts at run time, so XCom
stays JSON. A key is ``NotRequired`` only where a builder may leave it out.
tests/include/params/test_plan_types.py checks that each builder returns exactly these keys
and that every ``plan["..."]`` read in dags/ and include/ is declared here.

Imports nothing from the project: any module may use these types. No ``from __future__
import annotations`` here: Python 3.11 would then not see ``NotRequired`` in the string
annotations (every key would count as required).
"""

from typing import Any, NotRequired, TypedDict


class CodeKeys(TypedDict):
    """S3 keys of the run's job package (under ``<prefix>/runs/<run key>/code``)."""

    entry_script: str
    py_files: str
    bootstrap: str
    requirements: str
    model: NotRequired[str]
    """Only for a runtime that runs a converted model (litert, onnx)."""


class JobUris(TypedDict):
    """The job's entry script, zip, ``--input``, ``--output`` and ``--model`` URIs."""

    entry_script: str
    py_files: str
    input: str
    output: str
    model: str | None


class Wait(TypedDict):
    """How a sensor waits: poke interval, timeout, how long to wait for a failed run's log."""

    poke_interval: int
    timeout: int
    log_wait: int


class Wheelhouse(TypedDict):
    """The nodes' wheels in S3 (digest of the node requirements and constraints)."""

    digest: str
    key_prefix: str
    uri: str


class StoragePlan(TypedDict):
    """Where a run's dataset, job package, model, weights and results live (both EMR DAGs)."""

    aws_conn_id: str | None
    region: str
    bucket: str
    run_key: str
    dataset_dir: str
    dataset_prefix: str | None
    """None: an S3 dataset read in place, nothing is uploaded."""
    pack_dataset: bool
    code_keys: CodeKeys
    models_prefix: str
    job: dict[str, Any]
    """``JobSettings`` as a dict (``dataclasses.asdict``): the job's own flags."""
    weights_file: str | None
    weights_key: str | None
    results_prefix: str
    results_dir: str
    download_features: bool
    uris: JobUris
    dataset_uri: NotRequired[str]
    """Only for an S3 dataset read in place (the ``dataset_uri`` Param)."""


class _EmrRunPlan(StoragePlan):
    """What both EMR run plans add to the storage plan: logs, tags and the wait."""

    log_uri: str | None
    tags: dict[str, str]
    deferrable: bool
    poke_interval: int
    wait: Wait


class ClusterPlan(_EmrRunPlan):
    """The EMR cluster DAG's run plan."""

    s3_packed_prefix: str
    executors: dict[str, Any]
    wheelhouse: Wheelhouse | None
    """None: the nodes install from PyPI."""
    root_volume_gib: int
    create_max_attempts: int
    job_flow_overrides: dict[str, Any]
    steps: list[dict[str, Any]]
    pack_s3_dataset: NotRequired[bool]
    """Only for an S3 dataset read in place: pack it on the cluster first."""


class ServerlessPlan(_EmrRunPlan):
    """The EMR Serverless DAG's run plan (flat keys: the DAG passes each to an operator)."""

    sizing: dict[str, Any]
    spark_conf: dict[str, str]
    architecture: str
    feature_cache_uri: str | None
    env_prefix: str
    application: dict[str, Any]
    application_tags: dict[str, str]
    job_run_name: str
    execution_role: str
    job_run_overrides: dict[str, Any]
    job_run_config: dict[str, Any]


class ServerlessPreflight(TypedDict):
    """The Serverless DAG's ``preflight``: the checks, and the job role's ARN."""

    checks: list[dict[str, Any]]
    job_role_arn: str


class JobEnvironment(TypedDict):
    """The Serverless DAG's ``stage_job_environment``: the packed environment, job driver."""

    archive_uri: str
    job_driver: dict[str, Any]


class RunInfo(TypedDict):
    """``skip_if_unchanged`` of a run that goes ahead: its fingerprint and staged manifest."""

    fingerprint: str
    components: dict[str, Any]
    manifest: dict[str, Any]
    manifest_key: NotRequired[str]
    """EMR runs: the staged manifest's S3 key."""
    manifest_file: NotRequired[str]
    """Local runs: the staged manifest's file."""


class LocalDataset(TypedDict):
    """The local DAG's ``validate_dataset``: the folder and its counts
    (``DatasetSummary.to_dict()``)."""

    dataset_dir: str
    root: str
    images: int
    by_split: dict[str, int]
    by_split_label: dict[str, dict[str, int]]
    empty_files: list[str]
    other_files: list[str]
    labels: list[str]


class LocalJob(TypedDict):
    """The local DAG's ``prepare_spark_job``: what ``SparkSubmitOperator`` gets, and where
    the results go."""

    application: str
    py_files: str
    application_args: list[str]
    env_vars: dict[str, str]
    run_dir: str


PLAN_TYPES: tuple[type, ...] = (StoragePlan, ClusterPlan, ServerlessPlan)
"""The run plans, for the checks that read them."""
