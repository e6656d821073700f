"""The project's layers and dependencies, checked by real tools, and each check shown to fail.

* import-linter's contracts (``[tool.importlinter]`` in pyproject.toml): spark_jobs imports
  neither Airflow nor the project around it; dags/include/spark_jobs never import the emulator;
  include never imports a DAG file; include's packages are layered (each imports only those
  below it); no import cycles inside include or spark_jobs.
* deptry (``[tool.deptry]``): every import is a declared, pinned dependency and every declared
  one is used, in three scopes (:data:`DEPTRY_CHECKS`).

`make lint` runs this file, and so does the test suite (`make test`, `make test-fast`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent
CONTRACTS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]

# What the EMR nodes have without a requirements line, and what a node needs at run time
# only (deptry sees no import of it).
NODE_IGNORES = {
    "DEP001": ["pyspark"],  # EMR's own Spark (requirements.txt's pin is for local runs)
    "DEP003": ["pyspark"],  # (installed here, so deptry calls it transitive)
    "DEP002": [
        "h5py",  # Keras reads the ImageNet weights file with it (--runtime keras)
        "backports-strenum",  # ai-edge-litert's dependency, pinned for the nodes' pip
    ],
}


def _node_check(root: Path, scratch: Path) -> list[str]:
    files = sorted(
        p.relative_to(root).as_posix() for p in root.glob("spark_jobs/requirements*.txt")
    )
    assert files, f"no spark_jobs/requirements*.txt under {root}"
    ignores = ",".join(f"{code}={'|'.join(names)}" for code, names in NODE_IGNORES.items())
    # An empty config: no [project] table, so deptry reads the requirements files named.
    empty = scratch / "empty.toml"
    empty.write_text("")
    return [
        "spark_jobs", "--config", str(empty), "--known-first-party", "spark_jobs",
        "--requirements-files", ",".join(files),
        "--per-rule-ignores", ignores,
    ]  # fmt: skip


# Each deptry scope: its arguments, given the repository (or a copy of its configuration) and
# a scratch folder.
DEPTRY_CHECKS = {
    # Everything (tests, the emulator, benchmarks too) against both requirements files.
    "repository": lambda root, scratch: ["."],
    # What the Airflow image runs (requirements.txt); requirements-dev.txt is dev-only there.
    "pipeline": lambda root, scratch: [
        *("dags", "include", "spark_jobs"),
        *("--optional-dependencies-dev-groups", "dev"),
    ],
    # The job on the EMR nodes against what their bootstrap installs.
    "nodes": _node_check,
}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "NO_COLOR": "1"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    config = REPO_ROOT / "pyproject.toml"
    return _run([str(BIN / "lint-imports"), str(config), "--no-cache", "--no-logo"], cwd)


def _verdicts(output: str) -> dict[str, str]:
    """Each contract's name -> KEPT or BROKEN, from lint-imports' report (it wraps long names)."""
    text = " ".join(output.split())
    verdicts = {}
    for contract in CONTRACTS:
        for verdict in ("KEPT", "BROKEN"):
            if f"{contract['name']} {verdict}" in text:
                verdicts[contract["name"]] = verdict
    return verdicts


def _deptry(
    check: str, root: Path, scratch: Path
) -> tuple[subprocess.CompletedProcess[str], set[tuple[str, str, str]]]:
    """Run one deptry scope in ``root``: its output and its (code, module, file) findings."""
    report = scratch / f"deptry-{check}.json"
    args = DEPTRY_CHECKS[check](root, scratch)
    done = _run([str(BIN / "deptry"), *args, "--no-ansi", "-o", str(report)], root)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    findings = {
        (v["error"]["code"], v["module"], Path(v["location"]["file"]).as_posix())
        for v in json.loads(report.read_text())
    }
    return done, findings


def test_the_repository_keeps_every_import_contract():
    done = _lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert set(_verdicts(done.stdout).values()) == {"KEPT"}
    assert len(_verdicts(done.stdout)) == len(CONTRACTS) == 5


@pytest.mark.parametrize("check", sorted(DEPTRY_CHECKS))
def test_every_import_is_a_declared_dependency(check, tmp_path):
    done, found = _deptry(check, REPO_ROOT, tmp_path)
    assert not found, sorted(found)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


# A fake project with the same top-level packages, clean under every contract: each case adds
# one module that breaks exactly one contract.
CLEAN_TREE = {
    "dags/fruits_dag.py": "import airflow\nimport include.local.tasks\n",  # dags: no __init__.py
    "include/__init__.py": "",
    "include/local/tasks.py": "import airflow\nimport spark_jobs.job\nimport include.capacity\n",
    "spark_jobs/__init__.py": "",
    "spark_jobs/job.py": "import pyspark\n",
    "emr_emulator/__init__.py": "",
    "emr_emulator/engine.py": "import include.local.tasks\nimport spark_jobs.job\n",
}
LAYERED = "include's packages are layered"
VIOLATIONS = [  # (the start of the broken contract's name, the module(s) that break it)
    ("spark_jobs runs on the EMR nodes", {"spark_jobs/hook.py": "from airflow.sdk import task\n"}),
    ("spark_jobs runs on the EMR nodes", {"spark_jobs/cfg.py": "from include import tasks\n"}),
    (
        "The pipeline never imports the emulator",
        {"include/local/fake.py": "import emr_emulator.engine\n"},
    ),
    (
        "DAG files import include, include never",
        {"include/local/helper.py": "from dags import fruits_dag\n"},
    ),
    # A package imports one above it, even inside a function (the params <-> costs cycle).
    (LAYERED, {"include/capacity/prices.py": "def f():\n    from include import costs\n"}),
    # Two siblings of one layer import neither each other.
    (LAYERED, {"include/emr/plan.py": "import include.emr_serverless\n"}),
    # A new package of include/ must be given its place in the layers.
    (LAYERED, {"include/newcomer/__init__.py": ""}),
    (
        "No import cycles between the modules of a package",
        {
            "include/params/a.py": "import include.params.b\n",
            "include/params/b.py": "def f():\n    import include.params.a\n",  # in a function
        },
    ),
]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _ignored_imports() -> dict[str, str]:
    """A module for each import a contract ignores, so those ignores match in the fake tree."""
    files: dict[str, str] = {}
    for contract in CONTRACTS:
        for line in contract.get("ignore_imports", []):
            importer, imported = (part.strip() for part in line.split("->"))
            for module in (importer, imported):
                parts = module.split(".")
                for depth in range(1, len(parts)):
                    files.setdefault("/".join(parts[:depth]) + "/__init__.py", "")
                files.setdefault("/".join(parts) + ".py", "")
            files["/".join(importer.split(".")) + ".py"] += f"import {imported}\n"
    return files


def _ancestor_packages() -> dict[str, str]:
    """An empty package for each package the cycle contract looks inside."""
    return {
        f"{package.replace('.', '/')}/__init__.py": ""
        for contract in CONTRACTS
        for package in contract.get("ancestors", [])
    }


def _layer_packages() -> dict[str, str]:
    """An empty package for each layer of a layers contract with containers (each must exist)."""
    files = {}
    for contract in CONTRACTS:
        for container in contract.get("containers", []):
            for layer in contract["layers"]:
                for name in layer.replace(":", "|").split("|"):
                    path = f"{container}.{name.strip()}".replace(".", "/")
                    files[f"{path}/__init__.py"] = ""
    return files


@pytest.fixture
def fake_project(tmp_path):
    _write(
        tmp_path,
        {**_layer_packages(), **_ancestor_packages(), **_ignored_imports(), **CLEAN_TREE},
    )
    return tmp_path


def _module_cycles(
    package: str, ignored: set[tuple[str, str]], *, depth: int | None = None
) -> list[list[str]]:
    """Import cycles through modules under ``package`` (imports inside functions included),
    from import-linter's own graph (grimp); Tarjan's strongly connected components. With
    ``depth``, each module counts as its ancestor of that many dotted parts (``depth=2``:
    ``include.costs.budget`` is ``include.costs``): the cycles between packages."""
    import grimp

    def collapse(module: str) -> str:
        return ".".join(module.split(".")[:depth]) if depth else module

    graph = grimp.build_graph(package)
    edges: dict[str, set[str]] = {}
    for m in graph.modules:
        if not m.startswith(package):
            continue
        targets = edges.setdefault(collapse(m), set())
        for i in graph.find_modules_directly_imported_by(m):
            if i.startswith(package) and (m, i) not in ignored and collapse(i) != collapse(m):
                targets.add(collapse(i))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle_runs_through_the_modules_of_include():
    """The module-level half of "no cycles inside include", across its packages (the
    contract above checks each package's own modules)."""
    ignored = {
        tuple(part.strip() for part in line.split("->"))
        for contract in CONTRACTS
        for line in contract.get("ignore_imports", [])
    }
    assert _module_cycles("include", ignored) == []


def test_no_import_cycle_runs_between_the_packages_of_include():
    """The package-level half, the same check as the layers contract but without its order:
    e.g. params importing costs while costs imports params would be one."""
    assert _module_cycles("include", set(), depth=2) == []


def test_the_package_cycle_check_finds_a_cycle_that_no_module_cycle_makes(tmp_path, monkeypatch):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/one/__init__.py": "",
            "pkg/one/a.py": "import pkg.two.b\n",
            "pkg/one/c.py": "",
            "pkg/two/__init__.py": "",
            "pkg/two/b.py": "",
            "pkg/two/d.py": "def f():\n    from pkg.one import c\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _module_cycles("pkg", set()) == []
    assert _module_cycles("pkg", set(), depth=2) == [["pkg.one", "pkg.two"]]


def test_the_module_cycle_check_finds_a_cycle_across_packages(tmp_path, monkeypatch):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/one/__init__.py": "",
            "pkg/one/a.py": "import pkg.two.b\n",
            "pkg/two/__init__.py": "",
            "pkg/two/b.py": "def f():\n    from pkg.one import a\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _module_cycles("pkg", set()) == [["pkg.one.a", "pkg.two.b"]]


def test_the_fake_project_is_clean(fake_project):
    done = _lint_imports(fake_project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.mark.parametrize(
    ("broken", "files"), VIOLATIONS, ids=[str(sorted(f)) for _, f in VIOLATIONS]
)
def test_each_contract_fails_on_its_violation(fake_project, broken, files):
    _write(fake_project, files)
    done = _lint_imports(fake_project)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    verdicts = _verdicts(done.stdout)
    assert len(verdicts) == len(CONTRACTS), done.stdout
    assert {name for name, verdict in verdicts.items() if verdict == "BROKEN"} == {
        name for name in verdicts if name.startswith(broken)
    }, done.stdout


def test_an_ignored_import_that_no_longer_exists_fails(fake_project):
    """When a move or a fix removes an ignored import, lint-imports says to drop the ignore."""
    importer = next(line for c in CONTRACTS for line in c.get("ignore_imports", []))
    path = fake_project / (importer.split("->")[0].strip().replace(".", "/") + ".py")
    path.write_text("")
    done = _lint_imports(fake_project)
    assert done.returncode != 0
    assert "No matches for ignored import" in " ".join(done.stdout.split()), done.stdout


@pytest.fixture
def fake_dependencies(tmp_path):
    """The repository's dependency configuration, over a few modules of its own."""
    root = tmp_path / "project"
    (root / "spark_jobs").mkdir(parents=True)
    for rel in ["pyproject.toml", "requirements.txt", "requirements-dev.txt"]:
        shutil.copy(REPO_ROOT / rel, root / rel)
    for path in (REPO_ROOT / "spark_jobs").glob("requirements*.txt"):
        shutil.copy(path, root / "spark_jobs" / path.name)
    _write(root, {"dags/d.py": "", "include/__init__.py": "", "spark_jobs/__init__.py": ""})
    return root


@pytest.mark.parametrize(
    ("check", "module", "source", "code"),
    [
        # Installed, but nobody declared it: only there while something else needs it.
        ("repository", "include/s.py", "import jinja2\n", "DEP003"),
        ("repository", "tests/t.py", "import not_a_real_package_xyz\n", "DEP001"),
        # The pipeline imports a package that only requirements-dev.txt declares.
        ("pipeline", "include/s.py", "import moto\n", "DEP004"),
        # The job imports what the local venv has but the EMR nodes do not.
        ("nodes", "spark_jobs/plot.py", "import matplotlib\n", "DEP003"),
    ],
)
def test_deptry_reports_an_undeclared_import(fake_dependencies, check, module, source, code):
    _write(fake_dependencies, {module: source})
    done, found = _deptry(check, fake_dependencies, fake_dependencies.parent)
    assert done.returncode == 1, done.stdout[-3000:]
    name = source.split()[1].split(".")[0]
    assert (code, name, module) in found, sorted(found)
