"""The project's Airflow UI plugin: each pipeline run's report as a "Report" tab of its page,
and a "Fruits runs & costs" page in the navigation. The logic is in ``include/ui/``
(see docs/ui.md); this file only registers it."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from include.ui.app import URL_PREFIX, create_app
from include.ui.pages import REPORT_ROUTE, RUNS_ROUTE


class FruitsUiPlugin(AirflowPlugin):
    """Registers the FastAPI app under ``/fruits`` and its two external views."""

    name = "fruits_ui"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Fruits runs"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Report",
            "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}/report",
            "destination": "dag_run",
            "url_route": REPORT_ROUTE,
        },
        {
            "name": "Fruits runs & costs",
            "href": URL_PREFIX + "/runs",
            "destination": "nav",
            "url_route": RUNS_ROUTE,
        },
    ]
