"""The pinned environments agree with each other and with the EMR release the DAG targets."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from include.params.defaults import DEFAULT_RELEASE_LABEL
from tests.conftest import REPO_ROOT

# From the EMR release guide: the Spark each emr-7.x release ships.
EMR_SPARK = {
    "emr-7.9.0": "3.5.5",
    "emr-7.10.0": "3.5.5",
    "emr-7.11.0": "3.5.6",
    "emr-7.12.0": "3.5.6",
}
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(\[[^\]]+\])?==(?P<version>\S+)$")


def _pins(path) -> dict[str, str]:
    pins = {}
    for raw in (REPO_ROOT / path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = REQUIREMENT.match(line)
        assert match, f"{path}: {line!r} is not pinned with =="
        pins[match["name"].lower().replace("_", "-")] = match["version"]
    return pins


NODE_FILES = [
    "spark_jobs/requirements.txt",
    "spark_jobs/requirements-litert.txt",
    "spark_jobs/requirements-onnx.txt",
    "spark_jobs/requirements-keras.txt",
]


@pytest.mark.parametrize("path", ["requirements.txt", "requirements-dev.txt", *NODE_FILES])
def test_every_requirement_is_pinned_and_agrees_with_constraints(path):
    constraints = _pins("constraints.txt")
    for name, pinned in _pins(path).items():
        assert constraints.get(name) == pinned, f"{path}: {name}=={pinned} vs constraints"


def test_pyspark_matches_the_spark_of_the_target_emr_release():
    pinned = _pins("requirements.txt")["pyspark"]
    assert pinned == EMR_SPARK[DEFAULT_RELEASE_LABEL]
    assert version("pyspark") == pinned  # the venv really has it (no pyspark-client shadowing)
    import pyspark

    assert pyspark.__version__ == pinned


@pytest.mark.parametrize("runtime", ["litert", "onnx", "keras"])
def test_emr_nodes_get_the_job_dependencies_but_not_pyspark(runtime):
    from include.staging.job_package import node_requirements

    staged = node_requirements(runtime)
    node = {}
    for line in staged.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            node[name.lower()] = pinned
    assert {"numpy", "pandas", "pyarrow", "pillow"} <= set(node)
    assert "pyspark" not in node  # EMR provides Spark; a pip pyspark would shadow it
    runtime_package = {"litert": "ai-edge-litert", "onnx": "onnxruntime"}
    if runtime == "keras":
        assert "tensorflow-cpu" in node
    else:  # the fast runtimes' nodes get no TensorFlow at all
        assert runtime_package[runtime] in node
        assert not {"tensorflow-cpu", "tensorflow", "keras", "h5py"} & set(node)


NODE_PLATFORMS = {"x86_64": "x86_64-manylinux_2_28", "aarch64": "aarch64-manylinux_2_28"}


@pytest.mark.parametrize(
    ("runtime", "arch"),
    [
        ("litert", "x86_64"),
        ("litert", "aarch64"),
        ("onnx", "x86_64"),
        ("onnx", "aarch64"),
        ("keras", "x86_64"),
    ],
)
def test_node_requirements_resolve_to_wheels_for_the_nodes(runtime, arch, tmp_path):
    """What the bootstrap installs resolves for the nodes' Python 3.11 and platform (Amazon
    Linux 2023: glibc 2.34) from wheels only, within constraints.txt. Asks the package index."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from include.staging.job_package import node_requirements

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is installed by make setup"
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(node_requirements(runtime))
    cmd = [
        uv, "pip", "compile", "--quiet", "--no-build", "--no-header", "--python-version",
        "3.11", "--python-platform", NODE_PLATFORMS[arch], str(reqs),
        "-c", str(REPO_ROOT / "constraints.txt"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resolved = {line.split("==")[0] for line in done.stdout.splitlines() if "==" in line}
    assert {"numpy", "pandas", "pyarrow", "pillow"} <= resolved
    assert ("tensorflow-cpu" in resolved) is (runtime == "keras")


def test_keras_node_requirements_have_no_graviton_wheels(tmp_path):
    """Why the keras runtime is refused on m6g/m7g (include/capacity/runtimes.py)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from include.staging.job_package import node_requirements

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(node_requirements("keras"))
    cmd = [
        uv, "pip", "compile", "--quiet", "--no-build", "--python-version", "3.11",
        "--python-platform", NODE_PLATFORMS["aarch64"], str(reqs),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "tensorflow-cpu" in done.stderr
