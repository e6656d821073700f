"""The DAGs' trigger-time options (typed Airflow ``Param``s), their checks, and the job's flags.

* :mod:`include.params.common`: job, guard and dataset Params shared by the DAGs, the local
  DAG's (``local_params``), and their checks (``job_settings_from_params``,
  ``guard_settings_from_params``).
* :mod:`include.params.cluster`: the EMR cluster DAG's Params (``emr_params``, ``EmrSettings``).
* :mod:`include.params.serverless`: the EMR Serverless DAG's Params (``ServerlessSettings``).
* :mod:`include.params.dataset_uri`: the ``dataset_uri`` Param's form (``s3://bucket/prefix/``).
* :mod:`include.params.job_args`: the Spark job's command line (``JobSettings``), for every DAG.
* :mod:`include.params.run_paths`: ``run_results_dir``, a run's local results folder
  ``<root>/<dag>/<safe run id>`` (every writer and the UI plugin build it here).
* :mod:`include.params.defaults`: DAG defaults (owner, start date, retries, waits, timeouts).

The checks size and price against :mod:`include.capacity`; nothing here imports a package
above it (the order is the ``layers`` contract in pyproject.toml).
"""
