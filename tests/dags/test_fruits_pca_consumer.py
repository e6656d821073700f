"""The example Asset consumer: scheduled on the PCA Asset, reads the output an event names.

End to end (an EMR run's event read by this DAG) is in test_fruits_emr_scheduled.py.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DAG_ID = "fruits_pca_consumer"


def _write_pca(folder, rows):
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "path": [f"Training/{label}/{i}.jpg" for i, (label, _) in enumerate(rows)],
            "label": [label for label, _ in rows],
            "pca": [vector for _, vector in rows],
        }
    )
    pq.write_table(table, folder / "part-00000.parquet")
    return folder


def test_scheduled_on_the_pca_asset_with_it_as_inlet(dagbag):
    from include.results.assets import PCA_ASSET

    dag = dagbag.dags[DAG_ID]
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    assert list(dag.timetable.asset_condition.objects) == [PCA_ASSET]
    (task,) = dag.tasks
    assert task.inlets == [PCA_ASSET]


def test_summary_of_a_local_pca_output(tmp_path):
    from include.results.consumer import summarise_pca_event

    folder = _write_pca(
        tmp_path / "run" / "pca",
        [("Lemon", [1.0, 2.0, 3.0]), ("Kiwi", [0.0, 1.0, 2.0]), ("Lemon", [3.0, 2.0, 1.0])],
    )
    extra = {
        "run_id": "r1",
        "dag_id": "fruits_local_pipeline",
        "uri": "x",
        "local_dir": str(folder),
    }
    summary = summarise_pca_event(extra, aws_conn_id=None)
    assert (summary["rows"], summary["components"]) == (3, 3)
    assert summary["labels"] == ["Kiwi", "Lemon"]
    assert summary["run_id"] == "r1"


def test_summary_downloads_from_s3_when_the_local_copy_is_not_here(tmp_path):
    import boto3
    from moto import mock_aws

    from include.results.consumer import summarise_pca_event

    folder = _write_pca(tmp_path / "pca", [("Kiwi", [1.0, 2.0])])
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket="fruits-consumer-test",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        )
        s3.upload_file(
            str(folder / "part-00000.parquet"), "fruits-consumer-test", "r/pca/part-00000.parquet"
        )
        extra = {"uri": "s3://fruits-consumer-test/r/pca", "local_dir": str(tmp_path / "elsewhere")}
        summary = summarise_pca_event(extra, aws_conn_id=None)
    assert (summary["rows"], summary["components"], summary["labels"]) == (1, 2, ["Kiwi"])
    assert summary["source"] == "s3://fruits-consumer-test/r/pca"


def test_an_event_without_readable_output_is_a_clear_error(tmp_path):
    from include.results.consumer import NoPcaOutputError, summarise_pca_event

    with pytest.raises(NoPcaOutputError, match="names no readable PCA output"):
        summarise_pca_event({"uri": str(tmp_path / "gone")}, aws_conn_id=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoPcaOutputError, match="no PCA parquet files"):
        summarise_pca_event({"local_dir": str(tmp_path / "empty")}, aws_conn_id=None)
