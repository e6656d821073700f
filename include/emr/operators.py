"""Thin subclasses of the provider's EMR operators that add what the stock ones lack.

Create and add-step operators that are safe to retry (no second cluster, no duplicate step),
a create operator whose ``deferrable`` is decided at run time, a step sensor that logs why
the step failed, and a terminate operator that also finds the run's clusters by tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk.exceptions import AirflowFailException

from include.config import load_config
from include.emr.clusters import find_clusters
from include.emr.logs import describe_step_failure
from include.emr.plan import REQUEST_DIGEST_TAG
from include.emr_common.operators import _as_bool, apply_wait
from include.emr_common.plan import run_tags

ENDED_STATES = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")
"""Cluster states from which no step will ever run."""


def _reason(cluster: Mapping[str, Any]) -> str:
    reason = cluster.get("Status", {}).get("StateChangeReason") or {}
    text = ": ".join(str(reason[k]) for k in ("Code", "Message") if reason.get(k))
    return text or "no StateChangeReason given"


if TYPE_CHECKING:
    from airflow.sdk import Context


RUN_LOOKBACK = timedelta(hours=1)
"""How long before its run began a run's cluster may have been created (clock skew)."""


def _run_began(context: Context) -> datetime | None:
    """When the DAG run began: ``run_after`` (kept when tasks are cleared), else its logical
    date or start date; None when the context has no run."""
    dag_run = context.get("dag_run")
    for attr in ("run_after", "logical_date", "start_date"):
        value = getattr(dag_run, attr, None)
        if isinstance(value, datetime):
            return value
    return None


class EmrCreateClusterOperator(EmrCreateJobFlowOperator):
    """``EmrCreateJobFlowOperator`` that is safe to retry, with a run-time ``deferrable``.

    A retry does not pay for a second cluster: when a live cluster carrying this run's tags
    exists (an earlier attempt created it, then failed while waiting), its id is returned
    instead. Steps added to a cluster that is still starting wait for it, and the step
    sensor fails if the cluster never comes up. Nor does it pay twice for a failure: when
    the run's cluster made from the same request ended TERMINATED_WITH_ERRORS, the retry
    fails at once with EMR's StateChangeReason. After the waiter, the cluster's state is
    checked (the provider's waiter accepts TERMINATED). ``deferrable`` is a template field,
    so the run's Param decides whether the wait happens in a worker or in the triggerer.
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
        self._refuse_repeat_of_failed_request(tags, _run_began(context))
        cluster_id = super().execute(context)  # returns only when not deferred
        self._check_started(cluster_id)
        return cluster_id

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        cluster_id = super().execute_complete(context, event)
        self._check_started(cluster_id)
        return cluster_id

    def _refuse_repeat_of_failed_request(
        self, tags: Mapping[str, str], run_began: datetime | None
    ) -> None:
        """Fail at once when this run's same request already ended TERMINATED_WITH_ERRORS.

        The provider terminates a cluster whose create waiter failed, so the retry finds no
        live cluster and would pay for the same failure again (bootstrap error, bad subnet).
        A changed request (other subnet, instance type, bootstrap) has another digest and is
        created anew, so clearing the task after fixing the configuration works. Only
        clusters created since the run began (less :data:`RUN_LOOKBACK`, for clock skew) are
        listed: each listed one costs a DescribeCluster, and the failed clusters of older
        runs are never this run's.
        """
        overrides = self.job_flow_overrides if isinstance(self.job_flow_overrides, dict) else {}
        digest = {t["Key"]: t["Value"] for t in overrides.get("Tags", [])}.get(REQUEST_DIGEST_TAG)
        if not digest:
            return
        failed = find_clusters(
            self.hook.conn,
            tags={**tags, REQUEST_DIGEST_TAG: digest},
            states=("TERMINATED_WITH_ERRORS",),
            created_after=run_began - RUN_LOOKBACK if run_began else None,
        )
        if failed:
            cluster = failed[0]
            raise AirflowFailException(
                f"cluster {cluster['Id']} of this run, made from this same request, ended "
                f"TERMINATED_WITH_ERRORS ({_reason(cluster)}); not creating it again. Fix the "
                "cause (preflight lists the usual ones), then clear the task or trigger a new run"
            )

    def _check_started(self, cluster_id: str | None) -> None:
        """Fail when the cluster ended instead of starting.

        The provider's ``job_flow_waiting`` waiter counts TERMINATED as success, so a cluster
        that terminated straight away would otherwise reach the add-step task.
        """
        if not cluster_id:
            return
        cluster = self.hook.conn.describe_cluster(ClusterId=cluster_id)["Cluster"]
        state = cluster["Status"]["State"]
        if state in ENDED_STATES:
            raise AirflowFailException(
                f"cluster {cluster_id} is {state} instead of running: {_reason(cluster)}"
            )
        self.log.info("Cluster %s is %s", cluster_id, state)


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

    ``wait`` (templated; ``{"poke_interval": s, "timeout": s, "log_wait": s}``) sizes the
    wait at run time (``log_wait``: how long to wait for a failed step's stderr.gz),
    ``deferrable`` is templated too, and ``step_id`` may be the list that
    ``EmrAddStepsOperator`` returns: the last step is waited for (steps run in order), and
    when an earlier one failed (a packing step, whose failure cancels the rest) that one is
    the step explained. When the step ends FAILED/CANCELLED/INTERRUPTED, the
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
        self.log_wait_seconds = 0.0
        self.step_ids: list[str] = []

    def _prepare(self) -> None:
        if isinstance(self.step_id, list | tuple):
            if not self.step_id:
                raise AirflowFailException("no step id to wait for")
            # Steps run in order (StepConcurrencyLevel 1): the last one ends the run.
            self.step_ids = [str(s) for s in self.step_id]
            self.step_id = self.step_ids[-1]
        elif not self.step_ids:
            self.step_ids = [self.step_id]
        apply_wait(self)

    def execute(self, context: Context) -> None:
        self._prepare()
        super().execute(context)

    def _fail_with_details(self, reason: str) -> None:
        step = self._failed_step()
        cluster = self.hook.conn.describe_cluster(ClusterId=self.job_flow_id)["Cluster"]
        log_uri = self.log_uri or cluster.get("LogUri") or ""
        report = describe_step_failure(
            step,
            s3_hook=S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name),
            log_uri=log_uri,
            cluster_id=self.job_flow_id,
            wait_seconds=self.log_wait_seconds,
            log=self.log.info,
        )
        self.log.error("%s", report)
        raise AirflowFailException(f"{reason}; see the step's failure details above")

    def _failed_step(self) -> dict[str, Any]:
        """The step to explain: the first FAILED one of the run's steps, else the last."""
        steps = [
            self.hook.conn.describe_step(ClusterId=self.job_flow_id, StepId=step_id)["Step"]
            for step_id in self.step_ids or [self.step_id]
        ]
        failed = [s for s in steps if s.get("Status", {}).get("State") == "FAILED"]
        return failed[0] if failed else steps[-1]

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
