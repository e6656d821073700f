"""The typed XCom contract (include/params/plan_types.py): every builder returns exactly the
declared keys, and every key a task reads from a plan (or another typed XCom dict) anywhere
in dags/ and include/ is declared."""

from __future__ import annotations

import ast
import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, get_args, is_typeddict

import pytest

from include.params import plan_types
from include.params.plan_types import (
    ClusterPlan,
    LocalDataset,
    LocalJob,
    RunInfo,
    ServerlessPlan,
    StoragePlan,
)
from tests.conftest import REPO_ROOT

TYPED = {
    name: value
    for name, value in vars(plan_types).items()
    if is_typeddict(value) and value.__module__ == plan_types.__name__
}


def _typeddict_of(annotation: Any) -> type | None:
    """The TypedDict an annotation names (``X`` or ``X | None``), else None."""
    if is_typeddict(annotation):
        return annotation
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        typed = [a for a in get_args(annotation) if a is not NoneType and is_typeddict(a)]
        return typed[0] if len(typed) == 1 else None
    return None


def _fields(typed: type) -> dict[str, Any]:
    return typing.get_type_hints(typed)


def assert_exactly(value: Any, typed: type, where: str = "") -> None:
    """``value`` has every required key of ``typed``, no undeclared key; nested typed fields
    too (recursively)."""
    where = where or typed.__name__
    assert isinstance(value, dict), f"{where}: {type(value).__name__}, not a dict"
    missing = typed.__required_keys__ - set(value)
    extra = set(value) - typed.__required_keys__ - typed.__optional_keys__
    assert not missing, f"{where} lacks required keys {sorted(missing)}"
    assert not extra, f"{where} has keys {sorted(extra)} that {typed.__name__} does not declare"
    for key, annotation in _fields(typed).items():
        nested = _typeddict_of(annotation)
        if nested is not None and value.get(key) is not None:
            assert_exactly(value[key], nested, f"{where}[{key!r}]")


# ---------------------------------------------------------------------------- the builders


def _config(tmp_path):
    from include.config import PipelineConfig

    return PipelineConfig(bucket="b", prefix="p", results_dir=tmp_path, subnet_id="subnet-1")


@pytest.mark.parametrize("runtime", ["keras", "litert"])
def test_storage_plan_has_exactly_the_declared_keys(runtime, tmp_path):
    from include.emr_common.plan import build_storage_plan
    from include.params.common import job_settings_from_params

    job = job_settings_from_params({"runtime": runtime, "weights": "/w/weights.h5"})
    plan = build_storage_plan(
        job,
        _config(tmp_path),
        dag_id="fruits_emr_pipeline",
        run_id="r1",
        dataset_dir="/data/fruits",
        pack_dataset=True,
        download_features=False,
    )
    assert_exactly(plan, StoragePlan)
    assert ("model" in plan["code_keys"]) is (runtime == "litert")


@pytest.mark.parametrize("wheelhouse", ["a" * 16, None])
def test_cluster_plan_has_exactly_the_declared_keys(wheelhouse, tmp_path):
    from include.emr.dataset_steps import plan_for_s3_dataset
    from include.emr.plan import build_run_plan
    from include.params.cluster import emr_settings_from_params

    settings = emr_settings_from_params({})
    plan = build_run_plan(
        settings, _config(tmp_path), dag_id="d", run_id="r1", wheelhouse_digest=wheelhouse
    )
    assert_exactly(plan, ClusterPlan)
    assert (plan["wheelhouse"] is None) is (wheelhouse is None)
    in_place = plan_for_s3_dataset(plan, "s3://data/fruits", pack_on_cluster=True)
    assert_exactly(in_place, ClusterPlan)
    assert {"dataset_uri", "pack_s3_dataset"} <= set(in_place) - set(plan)


@pytest.mark.parametrize("dataset_uri", [None, "s3://data/fruits/"])
def test_serverless_plan_has_exactly_the_declared_keys(dataset_uri, tmp_path):
    from include.emr_serverless.plan import build_serverless_run_plan
    from include.params.serverless import serverless_settings_from_params

    settings = serverless_settings_from_params({})
    plan = build_serverless_run_plan(
        settings, _config(tmp_path), dag_id="d", run_id="r1", dataset_uri=dataset_uri
    )
    assert_exactly(plan, ServerlessPlan)
    assert ("dataset_uri" in plan) is (dataset_uri is not None)


def test_local_dataset_job_and_run_info_have_exactly_the_declared_keys(
    sample_dataset, tmp_path, monkeypatch
):
    from include.local.tasks import prepare_spark_job, validate_dataset
    from include.reruns.skip import skip_if_unchanged

    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_LOCAL", '{"conn_type": "spark", "host": "local[*]"}')
    params = {"dataset_dir": str(sample_dataset), "runtime": "keras", "weights": "none"}
    dataset = validate_dataset(params)
    assert_exactly(dataset, LocalDataset)
    assert_exactly(prepare_spark_job(dataset, params, run_id="r1"), LocalJob)
    run_info = skip_if_unchanged("local", params, plan=dataset, run_id="r1")
    assert run_info is not None
    assert_exactly(run_info, RunInfo)
    assert "manifest_file" in run_info


def test_the_check_itself_refuses_missing_and_undeclared_keys(tmp_path):
    from include.emr.plan import build_run_plan
    from include.params.cluster import emr_settings_from_params

    plan = dict(
        build_run_plan(emr_settings_from_params({}), _config(tmp_path), dag_id="d", run_id="r")
    )
    with pytest.raises(AssertionError, match="does not declare"):
        assert_exactly({**plan, "surprise": 1}, ClusterPlan)
    del plan["bucket"]
    with pytest.raises(AssertionError, match=r"lacks required keys \['bucket'\]"):
        assert_exactly(plan, ClusterPlan)
    good = build_run_plan(emr_settings_from_params({}), _config(tmp_path), dag_id="d", run_id="r")
    with pytest.raises(AssertionError, match=r"\['uris'\] has keys \['extra'\]"):
        assert_exactly({**good, "uris": {**good["uris"], "extra": "x"}}, ClusterPlan)


# ---------------------------------------------------------------------------- the readers

# In the DAG files a plan is an XComArg: its type is the producing task's return annotation.
TRACKED_NAMES = {"plan", "run_info", "storage"}
"""Variables that must have a typed XCom type wherever a key is read from them."""


class _Reads(ast.NodeVisitor):
    """Every ``x["key"]`` / ``x.get("key")`` whose ``x`` has a TypedDict type: from a
    parameter annotation, an annotated assignment, a call of a function whose return
    annotation is one, or a key of a typed value; and every read of a TRACKED_NAMES
    variable whose type is unknown."""

    def __init__(self, returns: dict[str, type]) -> None:
        self.returns = returns
        self.scopes: list[dict[str, type | None]] = [{}]
        self.reads: list[tuple[int, str, type | None, str]] = []

    def _annotation(self, node: ast.expr | None) -> type | None:
        if node is None:
            return None
        names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in TYPED]
        if len(names) == 1:
            return TYPED[names[0]]
        if len(names) > 1:  # a union of plans: any key of any of them
            return tuple(TYPED[n] for n in names)  # type: ignore[return-value]
        return None

    def type_of(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
            return None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "get" and isinstance(func, ast.Attribute):
                return self._field(self.type_of(func.value), node.args)
            if name in ("dict", "copy", "deepcopy") and node.args:
                return self.type_of(node.args[0])
            return self.returns.get(name or "")
        if isinstance(node, ast.Subscript):
            return self._field(self.type_of(node.value), [node.slice])
        return None

    @staticmethod
    def _field(typed: Any, args: list[ast.expr]) -> Any:
        if not args or not isinstance(args[0], ast.Constant) or not isinstance(typed, type):
            return None
        return _typeddict_of(_fields(typed).get(args[0].value))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope: dict[str, type | None] = {}
        every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for arg in every:
            scope[arg.arg] = self._annotation(arg.annotation)
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.scopes[-1][target.id] = self.type_of(node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if isinstance(node.target, ast.Name):
            self.scopes[-1][node.target.id] = self._annotation(node.annotation)

    def _read(self, node: ast.expr, owner: ast.expr, key: ast.expr) -> None:
        if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
            return
        typed = self.type_of(owner)
        tracked = isinstance(owner, ast.Name) and owner.id in TRACKED_NAMES
        if typed is not None or tracked:
            self.reads.append((node.lineno, ast.unparse(owner), typed, key.value))

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load):
            self._read(node, node.value, node.slice)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
            self._read(node, func.value, node.args[0])


def _sources() -> list[Path]:
    return sorted([*(REPO_ROOT / "dags").glob("*.py"), *(REPO_ROOT / "include").rglob("*.py")])


def _returns(trees: dict[Path, ast.Module]) -> dict[Path, dict[str, type]]:
    """Per file: the functions (its own, then every other file's with a name no other file
    reuses for another type) whose return annotation is a typed XCom dict."""
    own: dict[Path, dict[str, type]] = {}
    everywhere: dict[str, set[type]] = {}
    for path, tree in trees.items():
        own[path] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.returns is not None:
                typed = _Reads({})._annotation(node.returns)
                if isinstance(typed, type):
                    own[path][node.name] = typed
                    everywhere.setdefault(node.name, set()).add(typed)
    unique = {name: next(iter(types)) for name, types in everywhere.items() if len(types) == 1}
    return {path: {**unique, **functions} for path, functions in own.items()}


def _all_reads() -> list[tuple[str, int, str, Any, str]]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in _sources()}
    returns = _returns(trees)
    found = []
    for path, tree in trees.items():
        visitor = _Reads(returns[path])
        visitor.visit(tree)
        rel = str(path.relative_to(REPO_ROOT))
        found += [(rel, line, owner, typed, key) for line, owner, typed, key in visitor.reads]
    return found


def _declared(typed: Any) -> set[str]:
    types = typed if isinstance(typed, tuple) else (typed,)
    return {key for t in types for key in _fields(t)}


def test_every_key_read_from_a_typed_xcom_dict_is_declared():
    reads = _all_reads()
    plan_reads = [r for r in reads if r[2] == "plan"]
    # The scan sees the readers: the three DAG files and the plan's readers in include/.
    files = {r[0] for r in plan_reads}
    assert {"dags/fruits_emr_pipeline.py", "dags/fruits_emr_serverless_pipeline.py"} <= files
    assert len(files) >= 10, files
    untyped = [f"{f}:{line} {owner}[{key!r}]" for f, line, owner, typed, key in reads if not typed]
    assert not untyped, "annotate these with a TypedDict of include/params/plan_types.py"
    undeclared = [
        f"{f}:{line} {owner}[{key!r}] not in {typed}"
        for f, line, owner, typed, key in reads
        if key not in _declared(typed)
    ]
    assert not undeclared


def test_the_scan_finds_an_undeclared_key_and_an_unannotated_plan():
    source = """
from include.params.plan_types import ClusterPlan

def reader(plan: ClusterPlan, other):
    keys = plan["code_keys"]
    return plan["bucket"], plan.get("no_such_key"), keys["nope"], other["x"]

def unannotated(plan):
    return plan["bucket"]
"""
    visitor = _Reads({})
    visitor.visit(ast.parse(source))
    by_line = [(line, owner, typed, key) for line, owner, typed, key in visitor.reads]
    assert (9, "plan", None, "bucket") in by_line  # unannotated: reported as untyped
    reads = {(owner, key): typed for line, owner, typed, key in by_line if line < 9}
    assert reads[("plan", "bucket")] is ClusterPlan
    assert "no_such_key" not in _declared(reads[("plan", "no_such_key")])
    assert reads[("keys", "nope")] is plan_types.CodeKeys
    assert "nope" not in _declared(reads[("keys", "nope")])
    assert ("other", "x") not in reads  # not a typed dict, not a tracked name
