from pathlib import Path

import pytest

from include.params.run_paths import dag_folder_name, run_results_dir


def test_the_run_folder_names_the_dag_and_the_safe_run_id(tmp_path):
    folder = run_results_dir(tmp_path, "fruits_local_pipeline", "manual__2026-01-02T03:04:05+00:00")
    assert folder == tmp_path / "fruits_local_pipeline" / "manual__2026-01-02T03_04_05_00_00"
    # Two DAGs' runs with the same run id never share a folder.
    other = run_results_dir(tmp_path, "fruits_emr_pipeline", "manual__2026-01-02T03:04:05+00:00")
    assert other.name == folder.name
    assert other != folder


def test_a_string_root_gives_the_same_path():
    assert run_results_dir("data/results", "d", "r") == Path("data/results/d/r")


@pytest.mark.parametrize("dag_id", ["", ".", "..", "a/b", "../etc", "a b", "x" * 251])
def test_an_invalid_dag_id_is_refused(dag_id, tmp_path):
    with pytest.raises(ValueError, match="not a valid Airflow dag id"):
        run_results_dir(tmp_path, dag_id, "r")


def test_a_run_id_cannot_leave_the_dag_folder(tmp_path):
    folder = run_results_dir(tmp_path, "d", "../../etc/passwd")
    assert folder.parent == tmp_path / "d"
    assert dag_folder_name("fruits_emr_pipeline") == "fruits_emr_pipeline"
