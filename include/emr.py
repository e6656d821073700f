"""EMR building blocks of the pipeline: pure builders, cluster lookups, failure logs.

* :func:`build_run_plan` turns validated settings + configuration + run id into everything
  a run needs (S3 keys, the cluster request, the Spark step) as plain JSON data.
* :func:`build_job_flow_overrides` and :func:`build_spark_step` are pure: they return new
  dicts (``RunJobFlow`` request and ``AddJobFlowSteps`` step) and never mutate shared data.
* :func:`find_clusters` finds this project's live clusters by tag (the terminate task uses it
  when a cluster's id never reached XCom; the sweeper uses it for orphans).
* :func:`describe_step_failure` reads a failed step's FailureDetails and the tail of its
  ``stderr.gz`` from the EMR log URI, for the Airflow task log.
* Thin subclasses of the provider's operators add what the stock ones lack: create and
  add-step operators that are safe to retry (no second cluster, no duplicate step), a create
  operator whose ``deferrable`` is decided at run time, a step sensor that logs why the step
  failed, and a terminate operator that also finds the run's clusters by tag.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk.exceptions import AirflowFailException

from include.config import PROJECT_TAG, PipelineConfig, load_config
from include.job_args import JobSettings, build_job_arguments, safe_run_id
from include.staging import dataset_key_prefix

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import Context

    from include.params import EmrSettings

ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
"""States of a cluster that is (or will be) billed; TERMINATING ones are already on their way."""

NODE_PYTHON = "/usr/bin/python3.11"
"""EMR 7.x nodes carry Python 3.9 (default) and 3.11; the job and its wheels need 3.11."""

STDERR_TAIL_LINES = 60
STDOUT_TAIL_LINES = 20
_WEIGHTS_BUILTIN = ("imagenet", "none")
_SECRET_PATTERNS = (
    re.compile(r"(A[SK]IA[0-9A-Z]{16})"),
    re.compile(
        r"(?i)(aws_secret_access_key|aws_session_token|secret|password|token)(\s*[=:]\s*)\S+"
    ),
)


def run_tags(*, dag_id: str, run_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags that identify a run's clusters: the sweeper and the terminate task look for them."""
    return {**(extra or {}), "Project": PROJECT_TAG, "dag_id": dag_id, "run_id": run_id}


def build_job_flow_overrides(
    settings: EmrSettings,
    config: PipelineConfig,
    *,
    name: str,
    tags: Mapping[str, str],
    bootstrap_uri: str,
    requirements_uri: str,
) -> dict[str, Any]:
    """The ``RunJobFlow`` request of one run's cluster (a new dict each call).

    Spark + Livy on an emr-7.x release, 1 on-demand master + N core nodes (spot or
    on-demand), logs to ``config.log_uri``, a bootstrap action installing the job's
    requirements with Python 3.11, idle auto-termination as a cost backstop, and tags.
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
    return {
        "Name": name[:256],
        "ReleaseLabel": settings.release_label,
        "Applications": [{"Name": "Spark"}, {"Name": "Livy"}],
        "LogUri": config.log_uri,
        "Instances": instances,
        "BootstrapActions": [
            {
                "Name": "install-job-requirements",
                "ScriptBootstrapAction": {"Path": bootstrap_uri, "Args": [requirements_uri]},
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
                    "spark.sql.execution.arrow.pyspark.enabled": "true",
                    # One Arrow batch per model call: a decoded 224x224 image is ~0.6 MB.
                    "spark.sql.execution.arrow.maxRecordsPerBatch": str(settings.job.batch_size),
                    "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
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
        "AutoTerminationPolicy": {"IdleTimeout": settings.idle_timeout_minutes * 60},
        "JobFlowRole": config.emr_instance_profile,
        "ServiceRole": config.emr_service_role,
        "VisibleToAllUsers": True,
        "StepConcurrencyLevel": 1,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }


def build_spark_step(
    job: JobSettings,
    *,
    name: str,
    entry_script_uri: str,
    py_files_uri: str,
    input_uri: str,
    output_uri: str,
    run_id: str,
) -> dict[str, Any]:
    """One ``AddJobFlowSteps`` step running the job with spark-submit (a new dict each call).

    Arguments are a list for ``command-runner.jar`` (never a shell string). Client deploy
    mode keeps the driver's Python traceback in the step's stderr, which the sensor shows
    in the Airflow log when the step fails. ``CONTINUE`` on failure: the DAG's terminate
    task ends the cluster after the failure was logged.
    """
    args = [
        "spark-submit",
        "--deploy-mode",
        "client",
        "--master",
        "yarn",
        "--conf",
        f"spark.pyspark.python={NODE_PYTHON}",
        "--py-files",
        py_files_uri,
        entry_script_uri,
        *build_job_arguments(job, input_uri=input_uri, output_uri=output_uri, run_id=run_id),
    ]
    return {
        "Name": name[:256],
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def build_run_plan(
    settings: EmrSettings,
    config: PipelineConfig,
    *,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Everything one run needs, as JSON data: where things go in S3, the cluster and the step.

    Pure: the same inputs give the same plan, so every task of a run (and its retries)
    agree on the keys. Local dataset/weights paths are checked by the tasks that read them.
    """
    rid = safe_run_id(run_id)
    prefix = config.prefix.strip("/")
    bucket = config.bucket
    dataset_dir = settings.dataset_dir or str(config.data_dir)
    dataset_prefix = dataset_key_prefix(prefix, dataset_dir, pack=settings.pack_dataset)
    code_prefix = f"{prefix}/runs/{rid}/code"
    results_base = f"{prefix}/results"

    def uri(key: str) -> str:
        return f"s3://{bucket}/{key}"

    weights = settings.job.weights
    weights_file = None
    if weights not in _WEIGHTS_BUILTIN and not weights.startswith("s3://"):
        weights_file = weights
        weights = uri(f"{code_prefix}/weights/{PurePosixPath(weights).name}")
    job = JobSettings(**{**asdict(settings.job), "weights": weights})
    tags = run_tags(dag_id=dag_id, run_id=run_id, extra=config.extra_tags)
    code = {
        "entry_script": f"{code_prefix}/entrypoint.py",
        "py_files": f"{code_prefix}/spark_jobs.zip",
        "bootstrap": f"{code_prefix}/bootstrap.sh",
        "requirements": f"{code_prefix}/requirements.txt",
    }
    name = f"{PROJECT_TAG} {dag_id} {rid}"
    return {
        "aws_conn_id": config.aws_conn_id,
        "region": config.region,
        "bucket": bucket,
        "run_key": rid,
        "dataset_dir": dataset_dir,
        "dataset_prefix": dataset_prefix,
        "pack_dataset": settings.pack_dataset,
        "code_keys": code,
        "weights_file": weights_file,
        "weights_key": weights.removeprefix(f"s3://{bucket}/") if weights_file else None,
        "results_prefix": f"{results_base}/{rid}",
        "results_dir": str(config.results_dir / rid),
        "download_features": settings.download_features,
        "log_uri": config.log_uri,
        "tags": tags,
        "deferrable": settings.deferrable,
        "poke_interval": settings.poke_interval_seconds,
        # A cluster takes ~10 minutes to start and bootstrap; allow it 45.
        "create_max_attempts": max(1, (45 * 60) // settings.poke_interval_seconds),
        "wait": {
            "poke_interval": settings.poke_interval_seconds,
            "timeout": settings.step_timeout_seconds,
        },
        "job_flow_overrides": build_job_flow_overrides(
            settings,
            config,
            name=name,
            tags=tags,
            bootstrap_uri=uri(code["bootstrap"]),
            requirements_uri=uri(code["requirements"]),
        ),
        "steps": [
            build_spark_step(
                job,
                name=f"extract features + PCA ({settings.job.mode})",
                entry_script_uri=uri(code["entry_script"]),
                py_files_uri=uri(code["py_files"]),
                input_uri=uri(dataset_prefix + "/"),
                output_uri=uri(results_base),
                run_id=rid,
            )
        ],
    }


# --- cluster lookups ----------------------------------------------------------------------


def find_clusters(
    emr_client: Any,
    *,
    tags: Mapping[str, str],
    states: Iterable[str] = ACTIVE_CLUSTER_STATES,
    created_before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Clusters in ``states`` carrying every tag in ``tags`` (``describe_cluster`` shapes).

    ``list_clusters`` does not return tags, so each candidate is described; the state
    filter keeps that to the handful of live clusters.
    """
    kwargs: dict[str, Any] = {"ClusterStates": list(states)}
    if created_before is not None:
        kwargs["CreatedBefore"] = created_before
    found = []
    for page in emr_client.get_paginator("list_clusters").paginate(**kwargs):
        for summary in page.get("Clusters", []):
            cluster = emr_client.describe_cluster(ClusterId=summary["Id"])["Cluster"]
            cluster_tags = {t["Key"]: t["Value"] for t in cluster.get("Tags", [])}
            if all(cluster_tags.get(key) == value for key, value in tags.items()):
                found.append(cluster)
    return found


# --- failure logs -------------------------------------------------------------------------


def redact(text: str) -> str:
    """Mask things that look like AWS keys or secrets before text goes into a log."""
    text = _SECRET_PATTERNS[0].sub("<redacted-key>", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)


def step_stderr_uri(log_uri: str, cluster_id: str, step_id: str) -> str:
    """Where EMR puts a step's stderr: ``<log_uri>/<cluster_id>/steps/<step_id>/stderr.gz``."""
    return f"{log_uri.rstrip('/')}/{cluster_id}/steps/{step_id}/stderr.gz"


def read_log_tail(s3_hook: S3Hook, uri: str, *, lines: int = STDERR_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of a (gzipped) log object, or None when it is not there yet."""
    bucket, key = s3_hook.parse_s3_url(uri)
    if not s3_hook.check_for_key(key, bucket_name=bucket):
        return None
    body = s3_hook.get_key(key, bucket_name=bucket).get()["Body"].read()
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    tail = body.decode("utf-8", errors="replace").splitlines()[-lines:]
    return redact("\n".join(tail))


def describe_step_failure(
    step: Mapping[str, Any], *, s3_hook: S3Hook, log_uri: str, cluster_id: str
) -> str:
    """A readable account of a failed step: state, FailureDetails and the stderr tail."""
    status = step.get("Status", {})
    lines = [f"EMR step {step.get('Id')} ({step.get('Name')}) is {status.get('State')}"]
    details = status.get("FailureDetails") or {}
    for field in ("Reason", "Message", "LogFile"):
        if details.get(field):
            lines.append(f"  {field}: {redact(str(details[field]))}")
    reason = (status.get("StateChangeReason") or {}).get("Message")
    if reason:
        lines.append(f"  StateChangeReason: {redact(str(reason))}")
    log_file = str(details.get("LogFile") or "")
    uri = (
        log_file
        if log_file.startswith("s3://") and log_file.endswith(".gz")
        else step_stderr_uri(log_uri, cluster_id, str(step.get("Id")))
    )
    # spark-submit merges a PySpark driver's stderr into its stdout (PythonRunner): the
    # job's own traceback / "error:" line is in stdout.gz, the JVM's log in stderr.gz.
    stdout_uri = uri.rsplit("/", 1)[0] + "/stdout.gz"
    for name, log_file_uri, count in (
        ("stderr", uri, STDERR_TAIL_LINES),
        ("stdout", stdout_uri, STDOUT_TAIL_LINES),
    ):
        try:
            tail = read_log_tail(s3_hook, log_file_uri, lines=count)
        except Exception as exc:  # the failure report must never hide the failure itself
            lines.append(f"  (could not read {log_file_uri}: {type(exc).__name__}: {exc})")
            continue
        if tail is None:
            lines.append(
                f"  {name}: {log_file_uri} is not there yet "
                "(EMR uploads step logs every few minutes)"
            )
        else:
            lines.append(f"  last lines of {log_file_uri}:")
            lines.extend(f"    {line}" for line in tail.splitlines())
    return "\n".join(lines)


# --- operators ----------------------------------------------------------------------------


def _as_bool(value: Any) -> bool:
    """A templated flag: an XComArg gives a bool, a Jinja template gives "True"/"False"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class EmrCreateClusterOperator(EmrCreateJobFlowOperator):
    """``EmrCreateJobFlowOperator`` that is safe to retry, with a run-time ``deferrable``.

    A retry does not pay for a second cluster: when a live cluster carrying this run's tags
    exists (an earlier attempt created it, then failed while waiting), its id is returned
    instead. Steps added to a cluster that is still starting wait for it, and the step
    sensor fails if the cluster never comes up. ``deferrable`` is a template field, so the
    run's Param decides whether the wait happens in a worker or in the triggerer.
    """

    template_fields = (*EmrCreateJobFlowOperator.template_fields, "deferrable")

    def execute(self, context: Context) -> str | None:
        self.deferrable = _as_bool(self.deferrable)
        tags = run_tags(dag_id=context["dag"].dag_id, run_id=context["run_id"])
        existing = find_clusters(self.hook.conn, tags=tags)
        if existing:
            cluster_id = existing[0]["Id"]
            self.log.warning(
                "Cluster %s (%s) of this run already exists (an earlier attempt created it): "
                "reusing it instead of creating another",
                cluster_id,
                existing[0]["Status"]["State"],
            )
            return cluster_id
        return super().execute(context)


class EmrAddStepOnceOperator(EmrAddStepsOperator):
    """``EmrAddStepsOperator`` that is safe to retry: a step already added is not added again.

    When the cluster already has a step with the same name that is pending, running or
    completed (an earlier attempt added it, then failed), that step's id is returned.
    """

    REUSABLE_STEP_STATES = ("PENDING", "RUNNING", "COMPLETED")

    def execute(self, context: Context) -> list[str]:
        steps = self.steps
        if self.job_flow_id and isinstance(steps, list):
            names = [step["Name"] for step in steps]
            existing = {
                step["Name"]: step["Id"]
                for page in self.hook.conn.get_paginator("list_steps").paginate(
                    ClusterId=self.job_flow_id, StepStates=list(self.REUSABLE_STEP_STATES)
                )
                for step in page["Steps"]
            }
            if names and all(name in existing for name in names):
                self.log.warning(
                    "Steps %s are already on %s: not adding them again", names, self.job_flow_id
                )
                return [existing[name] for name in names]
        return super().execute(context)


class EmrStepSensorWithLogs(EmrStepSensor):
    """``EmrStepSensor`` that explains a failed step in the task log and does not retry it.

    ``wait`` (templated; ``{"poke_interval": s, "timeout": s}``) sizes the wait at run time,
    ``deferrable`` is templated too, and ``step_id`` may be the one-element list that
    ``EmrAddStepsOperator`` returns. When the step ends FAILED/CANCELLED/INTERRUPTED, the
    log shows its FailureDetails and the tail of its stderr (from ``log_uri``), and the task
    fails without retrying: polling a failed step again cannot make it succeed.
    """

    template_fields = (*EmrStepSensor.template_fields, "deferrable", "wait", "log_uri")

    def __init__(
        self,
        *,
        log_uri: str | None = None,
        wait: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.log_uri = log_uri
        self.wait = wait

    def _prepare(self) -> None:
        self.deferrable = _as_bool(self.deferrable)
        if isinstance(self.step_id, list | tuple):
            if len(self.step_id) != 1:
                raise AirflowFailException(f"expected one step id, got {self.step_id!r}")
            self.step_id = self.step_id[0]
        if self.wait:
            self.poke_interval = float(self.wait["poke_interval"])
            self.timeout = float(self.wait["timeout"])
            # Deferrable mode counts attempts, not seconds.
            self.max_attempts = max(1, int(self.timeout // max(self.poke_interval, 1)))

    def execute(self, context: Context) -> None:
        self._prepare()
        super().execute(context)

    def _fail_with_details(self, reason: str) -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        step = self.hook.conn.describe_step(ClusterId=self.job_flow_id, StepId=self.step_id)["Step"]
        cluster = self.hook.conn.describe_cluster(ClusterId=self.job_flow_id)["Cluster"]
        log_uri = self.log_uri or cluster.get("LogUri") or ""
        report = describe_step_failure(
            step,
            s3_hook=S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name),
            log_uri=log_uri,
            cluster_id=self.job_flow_id,
        )
        self.log.error("%s", report)
        raise AirflowFailException(f"{reason}; see the step's failure details above")

    def poke(self, context: Context) -> bool:
        response = self.get_emr_response(context=context)
        state = self.state_from_response(response)
        self.log.info("Step %s is %s", self.step_id, state)
        if state in self.failed_states:
            self._fail_with_details(f"EMR step {self.step_id} ended {state}")
        return state in self.target_states

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        self._prepare()  # a resumed task is a fresh operator: normalise step_id again
        if not event or event.get("status") != "success":
            self._fail_with_details(f"EMR step {self.step_id} did not complete: {event}")
        super().execute_complete(context, event)


class EmrTerminateRunClustersOperator(EmrTerminateJobFlowOperator):
    """``EmrTerminateJobFlowOperator`` that also terminates the run's clusters found by tag.

    ``job_flow_id`` may be empty: when the create task failed after EMR had accepted the
    request (a failed deferred wait, a crash), the id never reached XCom, but the cluster
    carries the run's tags (Project, dag_id, run_id) and is found by them. Every live
    cluster of the run is terminated; none found is not an error (nothing was created).
    Connection and region fall back to the configuration when the plan never got made.
    """

    def __init__(self, *, job_flow_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(job_flow_id="" if job_flow_id is None else job_flow_id, **kwargs)

    def execute(self, context: Context) -> None:
        if not self.region_name:
            config = load_config()
            self.aws_conn_id, self.region_name = config.aws_conn_id, config.region
        known = self.job_flow_id
        if known:  # first, so that a failing tag lookup cannot leave the known cluster up
            super().execute(context)
        tags = run_tags(dag_id=context["dag"].dag_id, run_id=context["run_id"])
        others = [c["Id"] for c in find_clusters(self.hook.conn, tags=tags) if c["Id"] != known]
        if not known and not others:
            self.log.info("No cluster of this run to terminate (tags %s)", tags)
        for cluster_id in others:
            self.log.info("Cluster %s carries this run's tags: terminating it too", cluster_id)
            self.job_flow_id = cluster_id
            super().execute(context)


# --- task bodies (called by the DAG's tasks) --------------------------------------------


class ResultsIncompleteError(RuntimeError):
    """The run's results in S3 are missing or incomplete (no ``_SUCCESS`` marker)."""


def upload_job_package(
    plan: Mapping[str, Any], *, source_dir: Path | None = None
) -> dict[str, Any]:
    """Build the job package and upload it (and a local weights file) to the run's code keys."""
    import tempfile

    from include.job_package import build_job_package
    from include.staging import make_s3_hook, upload_files

    keys = plan["code_keys"]
    with tempfile.TemporaryDirectory(prefix="fruits-job-") as tmp:
        package = build_job_package(Path(tmp), source_dir=source_dir)
        files = {
            keys["entry_script"]: package.entry_script,
            keys["py_files"]: package.py_files,
            keys["bootstrap"]: package.bootstrap,
            keys["requirements"]: package.requirements,
        }
        if plan.get("weights_file"):
            weights = Path(plan["weights_file"])
            if not weights.is_file():
                raise FileNotFoundError(f"weights file {weights} does not exist")
            files[plan["weights_key"]] = weights
        summary = upload_files(make_s3_hook(plan["aws_conn_id"]), files, plan["bucket"])
    summary.uri = f"s3://{plan['bucket']}/{keys['entry_script'].rsplit('/', 1)[0]}/"
    return summary.to_dict()


def download_results(plan: Mapping[str, Any], *, cluster_id: str | None) -> str:
    """Download the run's results to ``plan["results_dir"]`` and return that folder.

    Refuses (:class:`ResultsIncompleteError`) results without the job's ``_SUCCESS``
    marker, ``metrics.json`` or PCA parquet. Downloads into a sibling ``.partial`` folder
    and swaps it in at the end, so a rerun replaces the folder and a failed download leaves
    no half-written one. Also saves ``cluster.json`` (``describe_cluster`` Cluster +
    ``list_instance_groups`` InstanceGroups + ``CapturedAt``) for the report's cost section.
    """
    import json
    import shutil
    from pathlib import Path

    from airflow.providers.amazon.aws.hooks.emr import EmrHook

    from include.staging import make_s3_hook

    hook = make_s3_hook(plan["aws_conn_id"])
    bucket, prefix = plan["bucket"], plan["results_prefix"].rstrip("/")
    base = f"s3://{bucket}/{prefix}/"
    if not hook.check_for_key(f"{prefix}/_SUCCESS", bucket_name=bucket):
        raise ResultsIncompleteError(
            f"no _SUCCESS marker under {base}: the job did not finish, refusing partial results"
        )
    if not hook.check_for_key(f"{prefix}/metrics.json", bucket_name=bucket):
        raise ResultsIncompleteError(f"{base} has _SUCCESS but no metrics.json")
    pca_keys = [
        k for k in hook.list_keys(bucket, prefix=f"{prefix}/pca/") if k.endswith(".parquet")
    ]
    if not pca_keys:
        raise ResultsIncompleteError(f"{base} has _SUCCESS but no pca/*.parquet")

    final = Path(plan["results_dir"])
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    hook.download_file(
        f"{prefix}/metrics.json",
        bucket_name=bucket,
        local_path=str(partial),
        preserve_file_name=True,
        use_autogenerated_subdir=False,
    )
    folders = ["pca"] + (["features"] if plan.get("download_features") else [])
    for folder in folders:
        hook.sync_to_local_dir(bucket, partial / folder, s3_prefix=f"{prefix}/{folder}/")
    if cluster_id:
        emr = EmrHook(aws_conn_id=plan["aws_conn_id"], region_name=plan["region"]).conn
        cluster = {
            "Cluster": emr.describe_cluster(ClusterId=cluster_id)["Cluster"],
            "InstanceGroups": emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"],
            # The cluster is being terminated now (the step is over): the report counts its
            # instance-hours up to this moment, not up to whenever the report is built.
            "CapturedAt": datetime.now(UTC).isoformat(),
        }
        (partial / "cluster.json").write_text(json.dumps(cluster, indent=2, default=str))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return str(final)
