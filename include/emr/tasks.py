"""Task bodies of the EMR cluster DAG (``fruits_emr_pipeline``): plain functions, called by
the DAG's tasks in a line or two and tested without Airflow (the preflight:
:mod:`include.infra.dag_preflight`).

Bad input fails with ``AirflowFailException`` (no retry: a retry fails the same way). The
bodies both EMR DAGs share are in :mod:`include.emr_common.tasks`; the guards in
:mod:`include.reruns.skip` and :mod:`include.costs.budget`. Heavy imports stay inside the
functions: the DAG file imports this module at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.emr_common.tasks import check_weights_file
from include.params.plan_types import ClusterPlan


def validate_params(params: Mapping[str, Any], *, dag_id: str, run_id: str) -> ClusterPlan:
    """Validate the Params and the configuration; return the run's plan."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.config import REPO_ROOT, load_config
    from include.emr.dataset_steps import plan_for_s3_dataset
    from include.emr.plan import build_run_plan
    from include.params.cluster import emr_settings_from_params, pack_on_cluster_setting
    from include.params.common import dataset_uri_setting
    from include.staging.wheelhouse import digest_of_files

    try:
        settings = emr_settings_from_params(dict(params))
        config = load_config()
        dataset_uri = dataset_uri_setting(dict(params), config.dataset_uri)
        pack_on_cluster = pack_on_cluster_setting(dict(params))
    except ValueError as exc:
        raise AirflowFailException(f"Invalid run settings: {exc}") from exc
    plan = build_run_plan(
        settings,
        config,
        dag_id=dag_id,
        run_id=run_id,
        wheelhouse_digest=digest_of_files(REPO_ROOT, settings.job.runtime)
        if settings.wheelhouse
        else None,
    )
    if dataset_uri:  # read in place: the step's --input is the URI, nothing is uploaded
        plan = plan_for_s3_dataset(plan, dataset_uri, pack_on_cluster=pack_on_cluster)
    check_weights_file(plan)
    return plan


def plan_cluster_steps(plan: ClusterPlan, dataset: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The steps to add: the feature step, after a packing step when an S3 dataset is to be
    packed on the cluster and this listing's shards do not exist yet."""
    from include.emr.dataset_steps import packed_dataset_uri, steps_for_s3_dataset
    from include.staging.s3 import make_s3_hook

    ready = False
    if plan.get("pack_s3_dataset") and dataset.get("layout") == "images":
        dest = packed_dataset_uri(plan, dataset["listing_digest"])
        ready = make_s3_hook(plan["aws_conn_id"]).check_for_key(f"{dest}_SUCCESS")
    steps, why = steps_for_s3_dataset(plan, dataset, packed_ready=ready)
    print(why)
    return steps


def stage_wheelhouse(plan: ClusterPlan) -> dict[str, Any] | None:
    """Stage the nodes' wheels in S3 (reused while requirements/constraints are unchanged);
    None when the wheelhouse is off (the nodes install from PyPI)."""
    import tempfile

    from airflow.sdk.exceptions import AirflowFailException

    from include.capacity.runtimes import RUNTIME_ARCHES
    from include.config import REPO_ROOT
    from include.staging import wheelhouse
    from include.staging.s3 import make_s3_hook

    if plan["wheelhouse"] is None:
        print("wheelhouse off: the nodes install from PyPI")
        return None
    runtime = plan["job"]["runtime"]
    with tempfile.TemporaryDirectory(prefix="fruits-node-reqs-") as tmp:
        requirements, constraints = wheelhouse.node_requirement_files(REPO_ROOT, runtime, tmp)
        staged = wheelhouse.stage_wheelhouse(
            make_s3_hook(plan["aws_conn_id"]),
            plan["bucket"],
            plan["wheelhouse"]["key_prefix"],
            requirements=requirements,
            constraints=constraints,
            download=wheelhouse.pip_download,  # looked up now: tests swap the downloader
            # Only the CPUs the runtime has wheels for (keras: x86_64).
            arches=RUNTIME_ARCHES[runtime],
        )
    if staged.digest != plan["wheelhouse"]["digest"]:
        raise AirflowFailException(
            f"the node requirements changed during the run (wheelhouse {staged.digest}, "
            f"plan {plan['wheelhouse']['digest']}): trigger a new run"
        )
    try:
        wheelhouse.check_fits(staged.to_dict(), plan["root_volume_gib"])
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc
    print(f"wheelhouse {staged.uri}: {'reused' if staged.reused else 'staged'}")
    return staged.to_dict()


def download_results(plan: ClusterPlan, cluster_id: str | None) -> str:
    """Download metrics, PCA (and optionally features) and cluster.json; return the folder
    (refused, without a retry, when the results lack ``_SUCCESS``)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.emr_common.transfer import ResultsIncompleteError
    from include.emr_common.transfer import download_results as download

    try:
        return download(plan, cluster_id=cluster_id)
    except ResultsIncompleteError as exc:
        raise AirflowFailException(str(exc)) from exc


def build_report(
    plan: ClusterPlan,
    run_dir: str,
    estimate: Mapping[str, Any] | None,
    cluster_id: str | None,
) -> str:
    """The run's report, once the teardown has ended the cluster: ``cluster.json`` is
    rewritten with the cluster's final state and whole billed time first."""
    from include.emr_common.tasks import write_report
    from include.emr_common.transfer import record_final_cluster_state

    state = record_final_cluster_state(plan, run_dir, cluster_id)
    if state:
        print(f"cluster {cluster_id}: {state} (its final state in the report)")
    return write_report(run_dir, estimate)
