"""plugins/fruits_ui.py as Airflow's plugins manager loads it from the plugins folder."""

from __future__ import annotations


def test_airflow_loads_the_plugin_from_the_plugins_folder():
    from airflow import plugins_manager

    plugins, import_errors = plugins_manager._get_plugins()
    assert not {k: v for k, v in import_errors.items() if "fruits_ui" in k}
    (plugin,) = [p for p in plugins if p.name == "fruits_ui"]
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/fruits"
    routes = {route.path for route in app["app"].routes}
    assert {"/runs", "/runs/{dag_id}/{run_id}/report", "/runs/{dag_id}/{run_id}/metrics.json"} <= (
        routes
    )
    views = {v["name"]: v for v in plugin.external_views}
    assert views["Report"]["destination"] == "dag_run"
    assert views["Report"]["href"] == "/fruits/runs/{DAG_ID}/{RUN_ID}/report"
    assert views["Fruits runs & costs"]["destination"] == "nav"


def test_the_plugins_routes_are_outside_airflows_reserved_prefixes():
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    from include.ui.app import URL_PREFIX

    assert not any(URL_PREFIX.startswith(prefix) for prefix in RESERVED_URL_PREFIXES)


def test_every_route_of_the_app_depends_on_airflows_user_dependency():
    """Plugin endpoints are not protected by default: each route must ask for the user."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.routing import APIRoute

    from include.ui.app import create_app

    def calls(dependant) -> set:
        found = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    routes = [r for r in create_app().routes if isinstance(r, APIRoute)]
    assert len(routes) == 5
    for route in routes:
        assert get_user in calls(route.dependant), route.path


def test_the_plugin_module_imports_on_its_own_and_stays_thin():
    """The file Airflow loads by path, imported by name: its class is the registered plugin,
    and the app's logic lives in include/ui (the plugin only registers it)."""
    import importlib
    from pathlib import Path

    module = importlib.import_module("plugins.fruits_ui")
    plugin_classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and getattr(value, "name", None) == "fruits_ui"
    ]
    assert len(plugin_classes) == 1
    assert len(Path(module.__file__).read_text().splitlines()) < 60
