"""
### Example consumer of the `fruits_features_pca` Asset

Scheduled on the Asset that `fruits_emr_pipeline` and `fruits_local_pipeline` update when a
run succeeds (a failed run, or one skipped as unchanged, updates nothing). It reads the
**latest** PCA output named by the Asset's newest event (`extra.local_dir` when that folder
exists on this worker, else `extra.uri`, downloaded from S3 with the provider's `S3Hook`)
and logs its shape (rows x components) and its labels.

A template for downstream work on fresh features: replace `summarise_latest_pca` with
yours. Triggered by hand it reads the newest event as well.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task

from include.params.defaults import DAG_START_DATE, dag_default_args
from include.results import consumer
from include.results.assets import PCA_ASSET


@dag(
    dag_id="fruits_pca_consumer",
    schedule=[PCA_ASSET],
    start_date=DAG_START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_default_args(retry_delay=timedelta(seconds=30)),
    tags=["fruits", "assets", "example"],
    doc_md=__doc__,
)
def fruits_pca_consumer() -> None:
    @task(inlets=[PCA_ASSET])
    def summarise_latest_pca(**context: Any) -> dict[str, Any]:
        """Read the newest PCA output named by the Asset; log and return its shape and labels."""
        return consumer.summarise_latest_pca(context["inlet_events"][PCA_ASSET])

    summarise_latest_pca()


fruits_pca_consumer()
