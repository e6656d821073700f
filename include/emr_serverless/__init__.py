"""EMR Serverless building blocks of the ``fruits_emr_serverless_pipeline`` DAG.

* :mod:`include.emr_serverless.plan`: the run plan, the ``CreateApplication`` request and
  the job driver (pure; no AWS calls).
* :mod:`include.emr_serverless.operators`: subclasses of the provider's operators (create or
  reuse, start once, a sensor that shows the driver's log, cancel, stop + delete); they
  find applications by tag with ``include.emr_serverless.applications.find_applications``.
* :mod:`include.emr_serverless.applications`: this project's applications found by tag, in
  use or not, removed (the sweeper's).
* :mod:`include.emr_serverless.logs`: a failed job run's stateDetails and driver log tails.
* :mod:`include.emr_serverless.tasks`: task bodies (Params and plan, environment, results).
* :mod:`include.emr_serverless.sweep`: the sweeper's task body for applications.

Worker sizing is :mod:`include.capacity.serverless_sizing`. The report's Serverless cost
section is :mod:`include.results.serverless_cost`. What it shares with the cluster DAG is in
:mod:`include.emr_common`. Import from the submodule itself; this package imports nothing.
"""
