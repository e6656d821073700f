"""The EMR cluster DAG's building blocks (shared with Serverless: :mod:`include.emr_common`).

* :mod:`include.emr.plan`: pure builders (``build_run_plan``, ``build_job_flow_overrides``,
  ``build_spark_step``, ``build_pack_step``); no AWS calls, cheap to import.
* :mod:`include.emr.dataset_steps`: a run on an S3 dataset (read in place or packed first).
* :mod:`include.emr.clusters`: ``find_clusters`` (this project's live clusters by tag).
* :mod:`include.emr.logs`: ``describe_step_failure`` (a failed step's report).
* :mod:`include.emr.operators`: the retry-safe subclasses of the provider's operators.
* :mod:`include.emr.tasks`: the cluster DAG's task bodies (validate_params, preflight,
  plan_cluster_steps, stage_wheelhouse, download_results).
* :mod:`include.emr.sweep`: the sweeper's task bodies for clusters (find, terminate).

Executor sizing and the instance types' facts are in :mod:`include.capacity`. Import from
the submodule itself; this package imports nothing, so importing the pure
builders never pulls in the provider's operators.
"""
