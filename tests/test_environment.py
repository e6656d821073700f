"""The pinned environments agree with each other and with the EMR release the DAG targets."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from include.config import DEFAULT_RELEASE_LABEL
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
    from include.job_package import node_requirements

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
