"""Where a run's results live locally: ``<results root>/<dag id>/<safe run id>/``.

Beside ``safe_run_id`` and low in the layers: reruns, results, EMR and the UI build it.

Every writer (the local DAG, the EMR download, ``make run``, ``make run-emr``) and the UI
plugin (``include.ui``) build the folder with :func:`run_results_dir`, so a run's folder
says which DAG made it and two DAGs' runs with the same run id never share one.
"""

from __future__ import annotations

import re
from pathlib import Path

from include.params.job_args import safe_run_id

LOCAL_DAG_ID = "fruits_local_pipeline"
"""The local pipeline's DAG: its task bodies (``include.local.tasks``, ``include.reruns.skip``)
build its runs' folders with it."""

# Airflow's own rule for dag ids (airflow.utils.helpers.KEY_REGEX): letters, digits, _ . -
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")


def dag_folder_name(dag_id: str) -> str:
    """``dag_id`` as a folder name; ValueError unless it is a valid Airflow dag id
    (which is always one path segment) other than ``.``/``..``."""
    if not _DAG_ID.fullmatch(dag_id) or set(dag_id) == {"."}:
        raise ValueError(f"{dag_id!r} is not a valid Airflow dag id")
    return dag_id


def run_results_dir(results_root: str | Path, dag_id: str, run_id: str) -> Path:
    """The local results folder of run ``run_id`` of DAG ``dag_id``:
    ``<results_root>/<dag_id>/<safe_run_id(run_id)>``.

    Its parent (the DAG's folder) also holds the DAG's last-success record, staged
    manifests and job packages; ``<results_root>/_feature_cache/`` is shared by all DAGs.
    """
    return Path(results_root) / dag_folder_name(dag_id) / safe_run_id(run_id)
