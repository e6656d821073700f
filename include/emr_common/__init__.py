"""What the EMR cluster DAG and the EMR Serverless DAG share (neither imports the other).

* :mod:`include.emr_common.plan`: ``build_storage_plan``, ``run_tags``, ``tag_value``,
  ``job_spark_defaults`` (pure).
* :mod:`include.emr_common.tasks`: the TaskFlow tasks both DAGs use, and the plain pieces of
  their own task bodies (weights-file check, AWS clients, preflight refusal, the watcher).
* :mod:`include.emr_common.transfer`: ``upload_job_package`` and ``download_results``.
* :mod:`include.emr_common.logs`: log tails from S3, ``redact``.
* :mod:`include.emr_common.operators`: ``apply_wait`` (a sensor's wait sized at run time).
* :mod:`include.emr_common.runs`: ``tagged_run_is_active`` (the sweeps' guard), ``sweep_cutoff``.

Import from the submodule itself; this package imports nothing.
"""
