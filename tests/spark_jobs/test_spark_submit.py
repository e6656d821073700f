"""The shipped form: spark-submit with the zipped package, as the DAGs and EMR run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.staging.job_package import build_job_package
from tests.spark_jobs.conftest import EXPECTED_BAD, TEST_IMAGE_SIZE

pytestmark = pytest.mark.slow

SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


def _submit(package, workdir: Path, *job_args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Only the zip may provide spark_jobs: no source checkout on the workers' path.
    env.pop("PYTHONPATH", None)
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    command = [
        str(SPARK_SUBMIT),
        "--master", "local[2]",
        "--conf", "spark.ui.enabled=false",
        "--py-files", str(package.py_files),
        str(package.entry_script),
        *job_args,
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )


def test_spark_submit_runs_the_zipped_package(packed_bad_dataset, tmp_path):
    # The packed input, as the EMR pipeline uploads it.
    package = build_job_package(tmp_path / "package")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    # Outside spark-submit the package is not importable here: the zip is what ran.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [sys.executable, "-c", "import spark_jobs"], cwd=workdir, env=env, capture_output=True
    )
    assert probe.returncode != 0
    out = tmp_path / "results"
    proc = _submit(
        package, workdir,
        "--input", str(packed_bad_dataset), "--output", str(out), "--run-id", "submitted",
        "--weights", "none", "--image-size", str(TEST_IMAGE_SIZE), "--pca-k", "4",
    )  # fmt: skip
    # spark-submit merges the Python driver's stderr into its stdout.
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run_dir = out / "submitted"
    assert (run_dir / "_SUCCESS").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["counts"]["bad_files"] == len(EXPECTED_BAD)
    assert metrics["pca"]["k"] == 4
    assert metrics["input_format"] == "packed"
    assert metrics["spark"]["master"] == "local[2]"
    assert list((run_dir / "features").glob("*.parquet"))
