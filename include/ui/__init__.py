"""The Airflow UI plugin's logic (``plugins/fruits_ui.py`` only registers it): a run's report
as a tab of its page, and a "Fruits runs & costs" page. Testable without a running Airflow.

* :mod:`include.ui.app`: the FastAPI app (``/fruits``): endpoints and their security.
* :mod:`include.ui.results`: a run's published files (local folder, else S3), which may be served.
* :mod:`include.ui.runs`: Airflow's run records, why a run has no results, a skip's earlier run.
* :mod:`include.ui.resources`: active EMR clusters / Serverless applications and their cost.
* :mod:`include.ui.pages`: the pages' HTML.
"""
