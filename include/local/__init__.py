"""The user's local entry points.

* :mod:`include.local.run`: ``make run`` (``python -m include.local.run``), the whole pipeline here.
* :mod:`include.local.airflow_stack`: ``make airflow``, the Airflow UI with the offline EMR.
* :mod:`include.local.console`: a quiet console for ``dag.test()`` runs.
* :mod:`include.local.tasks`: the local DAG's task bodies (dataset, Spark job, results).
"""
