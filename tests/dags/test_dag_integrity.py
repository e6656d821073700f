"""DAG integrity: every DAG file imports cleanly and follows the project's rules.

The DagBag is parsed once per session (``dagbag`` fixture in tests/conftest.py).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pendulum
import pytest

from tests.conftest import REPO_ROOT

EXPECTED_DAG_IDS = {
    "fruits_emr_pipeline",
    "fruits_emr_serverless_pipeline",
    "fruits_local_pipeline",
    "fruits_emr_sweeper",
    "fruits_pca_consumer",
}


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(
        f"{path}: {error}" for path, error in dagbag.import_errors.items()
    )


def test_expected_dags_present(dagbag):
    assert set(dagbag.dag_ids) >= EXPECTED_DAG_IDS


def test_one_dag_per_file_named_after_it(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.fileloc.endswith(f"/{dag_id}.py"), f"{dag_id} lives in {dag.fileloc}"


def _dags(dagbag):
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


@pytest.fixture(params=sorted(EXPECTED_DAG_IDS))
def dag(request, dagbag):
    if request.param not in dagbag.dags:
        pytest.fail(f"DAG {request.param} is missing")
    return dagbag.dags[request.param]


def test_dag_metadata(dag):
    assert dag.tags, f"{dag.dag_id} has no tags"
    assert dag.doc_md, f"{dag.dag_id} has no doc_md"
    assert len(dag.doc_md.strip()) > 40, f"{dag.dag_id} doc_md is too short to help anyone"
    assert dag.catchup is False, f"{dag.dag_id} must set catchup=False"
    assert isinstance(dag.start_date, pendulum.DateTime), f"{dag.dag_id} needs a fixed start_date"
    assert dag.start_date < pendulum.now("UTC"), f"{dag.dag_id} start_date is in the future"


def test_every_task_has_owner_and_retries(dag):
    for task in dag.tasks:
        assert task.owner, f"{dag.dag_id}.{task.task_id}: set an owner"
        assert task.owner != "airflow", f"{dag.dag_id}.{task.task_id}: owner is the default"
        assert task.retries >= 1, f"{dag.dag_id}.{task.task_id}: retries must be >= 1"


def test_no_cycles(dag):
    from airflow.utils.dag_cycle_tester import check_cycle

    check_cycle(dag)  # raises AirflowDagCycleException on a cycle


def test_emr_terminate_always_runs(dagbag):
    from airflow.providers.amazon.aws.operators.emr import EmrTerminateJobFlowOperator
    from airflow.utils.trigger_rule import TriggerRule

    dag = dagbag.dags["fruits_emr_pipeline"]
    terminators = [t for t in dag.tasks if isinstance(t, EmrTerminateJobFlowOperator)]
    assert terminators, "the EMR DAG has no EmrTerminateJobFlowOperator"
    for task in terminators:
        assert task.trigger_rule == TriggerRule.ALL_DONE or task.is_teardown, (
            f"{task.task_id} has trigger rule {task.trigger_rule}: the cluster would leak"
        )


def test_emr_serverless_teardown_always_runs(dagbag):
    """The application is deleted and a running job run cancelled whatever failed."""
    from airflow.providers.amazon.aws.operators.emr import EmrServerlessDeleteApplicationOperator
    from airflow.utils.trigger_rule import TriggerRule

    from include.emr_serverless.operators import EmrServerlessCancelRunJobsOperator

    dag = dagbag.dags["fruits_emr_serverless_pipeline"]
    teardown = [
        t
        for t in dag.tasks
        if isinstance(
            t, EmrServerlessDeleteApplicationOperator | EmrServerlessCancelRunJobsOperator
        )
    ]
    assert len(teardown) == 2, teardown
    for task in teardown:
        assert task.trigger_rule == TriggerRule.ALL_DONE, (
            f"{task.task_id} has trigger rule {task.trigger_rule}: the application would leak"
        )


HEAVY_MODULES = ("tensorflow", "pyspark", "pandas", "matplotlib", "keras", "PIL", "pyarrow")


@pytest.fixture(scope="module")
def parse_probe() -> dict:
    """Every DAG file parsed in a fresh interpreter: import errors, DAG count, the heavy
    libraries and the project's modules it imported."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import DAGS_FOLDER

    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'dags': len(bag.dags),\n"
        f"  'heavy': sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules),\n"
        "  'include': sorted(m for m in sys.modules if m.split('.')[0] == 'include')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=os.environ.copy(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_files_parse_without_heavy_imports(parse_probe):
    """Parsing every DAG file in a fresh interpreter imports none of the heavy libraries."""
    assert parse_probe["errors"] == []
    assert parse_probe["dags"] >= len(EXPECTED_DAG_IDS)
    assert parse_probe["heavy"] == [], f"DAG parsing imported {parse_probe['heavy']}"


def _imports_inside_functions(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    return any(
        isinstance(inner, ast.Import | ast.ImportFrom)
        for node in ast.walk(tree)
        if isinstance(node, functions)
        for inner in ast.walk(node)
    )


def _plc0415_exempt_include_files() -> set[str]:
    ignores = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"][
        "per-file-ignores"
    ]
    return {f for f, codes in ignores.items() if f.startswith("include/") and "PLC0415" in codes}


def test_only_the_modules_dag_parsing_imports_may_import_inside_functions(parse_probe):
    """ruff's PLC0415 is off for exactly the include modules that DAG parsing imports and
    that import inside functions (their task bodies keep run-time imports out of parse time):
    a module that parsing no longer imports gets the rule back, a new one is listed."""
    needed = set()
    for module in parse_probe["include"]:
        path = REPO_ROOT / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if _imports_inside_functions(path):
            needed.add(path.relative_to(REPO_ROOT).as_posix())
    assert needed, "DAG parsing imported no include module that imports inside a function"
    assert _plc0415_exempt_include_files() == needed
