"""A run's results: the report, publishing them, the Assets and their consumer.

* :mod:`include.results.report`: the HTML report of one run (``python -m include.results.report``).
* :mod:`include.results.plots`: the report's plots (matplotlib).
* :mod:`include.results.separability`: the report's class-separability section.
* :mod:`include.results.html`: the report's HTML helpers (``esc``, ``table``, ``fmt``).
* :mod:`include.results.serverless_cost`: the report's EMR Serverless cost section (priced by
  :mod:`include.costs.serverless`).
* :mod:`include.results.publish`: after a successful run, its manifest, fingerprint and record.
* :mod:`include.results.assets`: the Airflow Assets the pipelines publish.
* :mod:`include.results.consumer`: the example Asset consumer's logic.
"""
