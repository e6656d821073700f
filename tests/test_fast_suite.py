"""`make test-fast` covers every module: each one is reached by a test that is not slow.

A static check (the tests' own source, read with :mod:`ast`): a module of dags/, include/,
spark_jobs/, emr_emulator/ or plugins/ counts as covered when a test file, a conftest or a
test helper under tests/ names it outside anything marked ``slow`` or ``integration`` (a
module-level ``pytestmark``, a marked test function or class; a test file whose every test
is marked has no fast part):

* ``import x.y`` / ``from x.y import z`` (also inside a test function), or ``from x import y``
  where ``y`` is a module;
* a string naming it (or something in it) outside a docstring: ``monkeypatch.setattr("x.y.z",
  ...)`` imports ``x.y``; ``[python, "-m", "x.y"]`` runs ``x.y`` (or ``x.y.__main__``);
* a DAG file (``dags/<dag_id>.py``, parsed by the session's DagBag, never imported): its
  dag_id as a string, the way tests look it up in the DagBag;

and so is every module a covered one imports (at import time or inside its functions: the
CLI and the emulator import their parts lazily), except what a DAG file imports inside its
task bodies (a DagBag parse runs none of them). A package's ``__init__.py`` is covered by any
module under it. What this shows is that no module is reached by slow tests only, which
`make test-fast` would never run; a coverage run would say more, at the cost of a dependency.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SOURCE_ROOTS = ("dags", "include", "spark_jobs", "emr_emulator", "plugins")
SLOW_MARKERS = frozenset({"slow", "integration"})


def source_modules(root: Path) -> dict[str, Path]:
    """Every module under the source folders of ``root``: dotted name -> file."""
    modules: dict[str, Path] = {}
    for folder in SOURCE_ROOTS:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _marker_names(node: ast.expr) -> set[str]:
    """``pytest.mark.slow`` -> {"slow"}; lists and calls (``pytest.mark.x(...)``) too."""
    if isinstance(node, ast.List | ast.Tuple):
        return {name for element in node.elts for name in _marker_names(element)}
    if isinstance(node, ast.Call):
        return _marker_names(node.func)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    ):
        return {node.attr}
    return set()


def _is_slow(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any(_marker_names(d) & SLOW_MARKERS for d in decorators)


def _module_is_slow(tree: ast.Module) -> bool:
    for statement in tree.body:
        targets = []
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets = [statement.target]
        named = any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets)
        if named and _marker_names(statement.value) & SLOW_MARKERS:
            return True
    return False


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the string constants that are docstrings (or bare string statements)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def _imported_names(node: ast.AST) -> set[str]:
    """``import a.b`` -> {"a.b"}; ``from a import b`` -> {"a", "a.b"} (b: module or name)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return set()


def fast_references(source: str) -> set[str]:
    """The dotted names and strings a test file's fast part refers to (see module docstring)."""
    tree = ast.parse(source)
    tests = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name.lower().startswith("test")
    ]
    # A test file whose every test is slow has no fast part (a helper module has no tests).
    if _module_is_slow(tree) or (tests and all(_is_slow(node) for node in tests)):
        return set()
    docstrings = _docstrings(tree)
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if _is_slow(node):
            continue
        found |= _imported_names(node)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            found.add(node.value)
        elif isinstance(node, ast.List | ast.Tuple):  # [python, "-m", "x.y"] runs x.y.__main__
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            found.update(f"{m}.__main__" for f, m in itertools.pairwise(values) if f == "-m")
        pending.extend(ast.iter_child_nodes(node))
    return found


def module_imports(source: str, *, in_functions: bool) -> set[str]:
    """The modules a source file imports (``in_functions``: also inside its functions)."""
    found: set[str] = set()
    pending: list[ast.AST] = list(ast.parse(source).body)
    while pending:
        node = pending.pop()
        if in_functions or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found |= _imported_names(node)
            pending.extend(ast.iter_child_nodes(node))
    return found


def _resolve(reference: str, modules: dict[str, Path]) -> list[str]:
    """ "a.b.c": the longest prefix that is a module, and every package above it."""
    parts = reference.split(".")
    for depth in range(len(parts), 0, -1):
        if ".".join(parts[:depth]) in modules:
            return [".".join(parts[:i]) for i in range(1, depth + 1)]
    return []


def uncovered(root: Path, test_files: list[Path]) -> list[str]:
    """The modules under ``root`` that no fast part of ``test_files`` loads."""
    modules = source_modules(root)
    references: set[str] = set()
    for path in test_files:
        references |= fast_references(path.read_text())
    dag_ids = {name.removeprefix("dags.") for name in modules if name.startswith("dags.")}
    pending = [f"dags.{dag_id}" for dag_id in dag_ids & references]
    pending += [name for reference in references for name in _resolve(reference, modules)]
    covered: set[str] = set()
    while pending:  # and what each one imports
        name = pending.pop()
        if name in covered or name not in modules:  # "dags" (no __init__.py) is no module
            continue
        covered.add(name)
        source = modules[name].read_text()
        # A DagBag parse never runs a DAG file's task bodies (nor their imports).
        for reference in module_imports(source, in_functions=not name.startswith("dags.")):
            pending.extend(_resolve(reference, modules))
    return sorted(name for name in modules if name not in covered and name != "dags")


def test_every_module_is_imported_by_a_fast_test():
    test_files = sorted((REPO_ROOT / "tests").rglob("*.py"))
    missing = uncovered(REPO_ROOT, test_files)
    assert not missing, (
        "only slow/integration tests (or none) reach these modules, so `make test-fast` "
        "never loads them: add a fast test that imports each one\n  " + "\n  ".join(missing)
    )


FAKE_SOURCES = {
    "include/__init__.py": "",
    "include/emr/__init__.py": "",
    "include/emr/plan.py": "",
    "include/emr/steps.py": "",
    "include/costs.py": "",
    "include/report.py": "def render():\n    from include import plots\n",
    "include/plots.py": "",  # reached through include.report only
    "include/tasks.py": "",  # imported inside the DAG file's task only
    "spark_jobs/__init__.py": "",
    "spark_jobs/cli.py": "",
    "dags/fruits_dag.py": "import include.emr\ndef task():\n    import include.tasks\n",
}


@pytest.fixture
def fake_repo(tmp_path):
    for rel, text in FAKE_SOURCES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "tests").mkdir()
    return tmp_path


def _uncovered_with(root: Path, **tests: str) -> list[str]:
    files = []
    for name, text in tests.items():
        files.append(root / "tests" / f"{name}.py")
        files[-1].write_text(text)
    return uncovered(root, files)


EVERY_MODULE = (
    "from include.emr import plan\n"
    "import include.emr.steps\n"
    "from include.costs import estimate\n"
    "def test_x(monkeypatch):\n"
    "    monkeypatch.setattr('include.report.render', None)\n"
    "    run(['python', '-m', 'spark_jobs.cli'])\n"
    "    dagbag.dags['fruits_dag']\n"
)


def test_every_kind_of_reference_covers_its_module_and_packages(fake_repo):
    assert _uncovered_with(fake_repo, test_all=EVERY_MODULE) == ["include.tasks"]


def test_a_module_a_fast_test_reaches_only_through_a_dag_task_body_is_reported(fake_repo):
    reached = EVERY_MODULE + "from include.tasks import body\n"
    assert _uncovered_with(fake_repo, test_all=reached) == []
    no_report = EVERY_MODULE.replace("    monkeypatch.setattr('include.report.render', None)\n", "")
    assert _uncovered_with(fake_repo, test_all=no_report) == [
        "include.plots",
        "include.report",
        "include.tasks",
    ]


def test_a_module_no_test_names_is_reported(fake_repo):
    source = EVERY_MODULE.replace("from include.costs import estimate\n", "")
    assert _uncovered_with(fake_repo, test_all=source) == ["include.costs", "include.tasks"]


@pytest.mark.parametrize(
    "slow_test",
    [
        "import pytest\npytestmark = pytest.mark.slow\nimport include.costs\n",
        "import pytest\npytestmark = [pytest.mark.integration, pytest.mark.slow]\n"
        "import include.costs\n",
        "import pytest\n@pytest.mark.slow\ndef test_s():\n    import include.costs\n",
        "import pytest\n@pytest.mark.slow\nclass TestS:\n"
        "    def test_s(self):\n        import include.costs\n",
        "import pytest\n@pytest.mark.integration\n@pytest.mark.timeout(5)\n"
        "def test_s():\n    run('include.costs')\n",
        '"""Tests of include.costs."""\n',  # a docstring names it, no test imports it
    ],
    ids=["pytestmark", "pytestmark-list", "function", "class", "string", "docstring"],
)
def test_a_module_only_slow_tests_reach_is_reported(fake_repo, slow_test):
    source = EVERY_MODULE.replace("from include.costs import estimate\n", "")
    assert _uncovered_with(fake_repo, test_all=source, test_slow=slow_test) == [
        "include.costs",
        "include.tasks",
    ]


def test_the_imports_of_a_file_whose_every_test_is_slow_do_not_count(fake_repo):
    source = EVERY_MODULE.replace("from include.costs import estimate\n", "")
    every_test_slow = (
        "import pytest\nfrom include.costs import estimate\n"
        "@pytest.mark.slow\ndef test_a():\n    pass\n"
        "@pytest.mark.slow\ndef test_b():\n    pass\n"
    )
    assert "include.costs" in _uncovered_with(fake_repo, test_all=source, test_s=every_test_slow)
    one_fast = every_test_slow.replace("@pytest.mark.slow\ndef test_b", "def test_b")
    assert "include.costs" not in _uncovered_with(fake_repo, test_all=source, test_s=one_fast)


def test_a_dag_no_fast_test_looks_up_is_reported(fake_repo):
    source = EVERY_MODULE.replace("    dagbag.dags['fruits_dag']\n", "")
    assert _uncovered_with(fake_repo, test_all=source) == ["dags.fruits_dag", "include.tasks"]
