"""Airflow-side code of the Fruits-360 feature pipeline, one package per concern.

* :mod:`include.config`: environment settings (``load_config``, bucket, prefix, region, roles).
* :mod:`include.params`: the DAGs' trigger-time Params, their checks, the job's command line,
  DAG defaults.
* :mod:`include.datasets`: the dataset: local folder, ``dataset_uri``, S3 listing, upload,
  sample, fetch.
* :mod:`include.staging`: what a run puts in S3: idempotent uploads, job package, converted
  model, wheelhouse, Serverless environment.
* :mod:`include.reruns`: skip an unchanged run: manifests, fingerprints, the last-success
  record and the decision.
* :mod:`include.costs`: price tables, cost estimates (cluster, Serverless), the budget guard.
* :mod:`include.emr_common`: what the cluster and the Serverless DAG share (storage plan, log
  tails, transfers, the shared tasks).
* :mod:`include.emr`: the EMR cluster DAG's plan, operators, sizing, step logs.
* :mod:`include.emr_serverless`: the EMR Serverless DAG's plan, operators, sizing, applications.
* :mod:`include.results`: the report and its plots, publishing a run, the Assets and their consumer.
* :mod:`include.local`: the user's local entry points (``make run``, ``make airflow``, the console).
* :mod:`include.infra`: ``python -m include.infra``, the AWS set-up/teardown CLI.
* :mod:`include.ui`: the Airflow UI plugin's app (reports, runs and costs); the api-server
  imports it through ``plugins/fruits_ui.py``, never a DAG file.

Nothing in this package imports heavy libraries (tensorflow, pyspark, pandas, boto3
clients) at module level: DAG files import it at parse time.
"""
