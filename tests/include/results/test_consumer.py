"""The example Asset consumer's logic (include/results/consumer.py): read the PCA output an
Asset event names, locally or from S3 (moto)."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


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


def test_summarise_latest_pca_reads_the_newest_event(tmp_path, capsys):
    from include.results.consumer import summarise_latest_pca

    old = _write_pca(tmp_path / "old", [("Kiwi", [1.0, 2.0])])
    new = _write_pca(tmp_path / "new", [("Kiwi", [1.0, 2.0, 3.0]), ("Lemon", [0.0, 1.0, 2.0])])
    events = [
        SimpleNamespace(extra={"run_id": "r1", "dag_id": "d", "local_dir": str(old)}),
        SimpleNamespace(extra={"run_id": "r2", "dag_id": "d", "local_dir": str(new)}),
    ]
    summary = summarise_latest_pca(events)
    assert summary["run_id"] == "r2"
    assert summary["rows"] == 2
    assert summary["components"] == 3
    assert "PCA of run r2 (d): 2 rows x 3 components, 2 labels: Kiwi, Lemon" in (
        capsys.readouterr().out
    )


def test_summarise_latest_pca_without_events_or_output_fails_without_retry(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from include.results.consumer import summarise_latest_pca

    with pytest.raises(AirflowFailException, match="has no event yet: run a pipeline DAG"):
        summarise_latest_pca([])
    gone = SimpleNamespace(extra={"uri": str(tmp_path / "gone")})
    with pytest.raises(AirflowFailException, match="names no readable PCA output"):
        summarise_latest_pca([gone])
