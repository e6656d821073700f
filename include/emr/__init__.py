"""EMR building blocks of the pipeline, one module per concern.

* :mod:`include.emr.plan`: pure builders (``build_run_plan``, ``build_job_flow_overrides``,
  ``build_spark_step``, ``run_tags``); no AWS calls, cheap to import.
* :mod:`include.emr.clusters`: ``find_clusters`` (this project's live clusters by tag).
* :mod:`include.emr.logs`: ``describe_step_failure`` and ``redact`` (a failed step's report).
* :mod:`include.emr.operators`: the retry-safe subclasses of the provider's operators.
* :mod:`include.emr_common.transfer`: ``upload_job_package`` and ``download_results`` (task bodies).

Import from the submodule itself; this package imports nothing, so importing the pure
builders never pulls in the provider's operators.
"""
