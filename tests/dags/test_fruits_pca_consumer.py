"""The example Asset consumer: scheduled on the PCA Asset, reads the output an event names
(its body: tests/include/results/test_consumer.py).

End to end (an EMR run's event read by this DAG) is in test_fruits_emr_scheduled.py.
"""

from __future__ import annotations

from types import SimpleNamespace

DAG_ID = "fruits_pca_consumer"


def test_scheduled_on_the_pca_asset_with_it_as_inlet(dagbag):
    from include.results.assets import PCA_ASSET

    dag = dagbag.dags[DAG_ID]
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    assert list(dag.timetable.asset_condition.objects) == [PCA_ASSET]
    (task,) = dag.tasks
    assert task.inlets == [PCA_ASSET]


def test_the_task_calls_the_include_function(dagbag, monkeypatch):
    from include.results.assets import PCA_ASSET
    from tests.dag_wiring import assert_task_calls

    events = [SimpleNamespace(extra={"run_id": "r1"})]
    wired = (
        "include.results.consumer",
        "summarise_latest_pca",
        {"inlet_events": {PCA_ASSET: events}},
        ((events,), {}),
    )
    assert_task_calls(dagbag.dags[DAG_ID].task_dict["summarise_latest_pca"], wired, monkeypatch)
