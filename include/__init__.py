"""Airflow-side code of the Fruits-360 feature pipeline, one package per concern.

Listed bottom to top: each package imports only those before it in this list (the ``layers``
contract in pyproject.toml, checked by ``make lint``).

* :mod:`include.config`: environment settings (``load_config``, bucket, prefix, region, roles).
* :mod:`include.capacity`: instance types, price tables, the runtimes' worker memory, executor
  (cluster) and worker (Serverless) sizing.
* :mod:`include.params`: the DAGs' trigger-time Params, their checks, the ``dataset_uri``
  form, the job's command line, the typed plans, DAG defaults.
* :mod:`include.staging`: what a run puts in S3: idempotent uploads, job package, converted
  model, wheelhouse, Serverless environment.
* :mod:`include.datasets`: the dataset: local folder, manifests, S3 listing, upload, sample,
  fetch.
* :mod:`include.reruns`: skip an unchanged run: fingerprints, the last-success record and the
  decision.
* :mod:`include.costs`: cost estimates (cluster, Serverless), the budget guard.
* :mod:`include.results`: the report and its plots, publishing a run, the Assets and their consumer.
* :mod:`include.emr_common`: what the cluster and the Serverless DAG share (storage plan, log
  tails, transfers, the shared tasks).
* :mod:`include.emr`: the EMR cluster DAG's plan, operators, step logs.
* :mod:`include.emr_serverless`: the EMR Serverless DAG's plan, operators, applications.
* :mod:`include.local`: the user's local entry points (``make run``, ``make airflow``, the console).
* :mod:`include.infra`: ``python -m include.infra``, the AWS set-up/teardown CLI.
* :mod:`include.ui`: the Airflow UI plugin's app (reports, runs and costs); the api-server
  imports it through ``plugins/fruits_ui.py``, never a DAG file.

Nothing in this package imports heavy libraries (tensorflow, pyspark, pandas, boto3
clients) at module level: DAG files import it at parse time.
"""
