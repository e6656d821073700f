"""The job package: a deterministic zip of spark_jobs plus the files EMR needs."""

from __future__ import annotations

import zipfile

import pytest

from include.staging.job_package import build_job_package


def test_real_package_contains_the_job_and_no_tests(tmp_path):
    package = build_job_package(tmp_path / "pkg")
    names = zipfile.ZipFile(package.py_files).namelist()
    assert "spark_jobs/__init__.py" in names
    assert "spark_jobs/cli.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    assert package.entry_script.name == "entrypoint.py"
    assert "spark_jobs" in package.entry_script.read_text()
    assert package.bootstrap.name == "bootstrap.sh"
    assert package.requirements.name == "requirements.txt"
    assert set(package.files()) == {
        "entrypoint.py",
        "spark_jobs.zip",
        "bootstrap.sh",
        "requirements.txt",
    }


def _fake_package(root):
    pkg = root / "spark_jobs"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "entrypoint.py", "bootstrap.sh", "requirements.txt"):
        (pkg / name).write_text(name)
    (pkg / "requirements-litert.txt").write_text("ai-edge-litert==1\n")
    (pkg / "sub" / "mod.py").write_text("x = 1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    return pkg


def test_zip_is_byte_identical_across_builds(tmp_path):
    import os
    import time

    pkg = _fake_package(tmp_path / "src")
    first = build_job_package(tmp_path / "a", source_dir=pkg).py_files.read_bytes()
    later = time.time() + 3600
    for path in pkg.rglob("*"):
        os.utime(path, (later, later))  # mtimes must not leak into the zip
    second = build_job_package(tmp_path / "b", source_dir=pkg).py_files.read_bytes()
    assert first == second
    names = zipfile.ZipFile(tmp_path / "a" / "spark_jobs.zip").namelist()
    assert names == sorted(names)
    assert "spark_jobs/sub/mod.py" in names
    assert not [n for n in names if "__pycache__" in n]


def test_incomplete_package_names_the_missing_file(tmp_path):
    pkg = _fake_package(tmp_path / "src")
    (pkg / "bootstrap.sh").unlink()
    with pytest.raises(FileNotFoundError, match=r"bootstrap\.sh"):
        build_job_package(tmp_path / "out", source_dir=pkg)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("runtime", ["litert", "onnx", "keras"])
def test_staged_requirements_are_the_base_plus_the_runtimes_own(tmp_path, runtime):
    package = build_job_package(tmp_path / runtime, runtime=runtime)
    staged = package.requirements.read_text()
    assert "pandas==" in staged
    assert ("tensorflow-cpu==" in staged) is (runtime == "keras")
    assert ("ai-edge-litert==" in staged) is (runtime == "litert")
    assert ("onnxruntime==" in staged) is (runtime == "onnx")


def test_a_runtime_without_requirements_is_refused(tmp_path):
    pkg = _fake_package(tmp_path / "src")
    with pytest.raises(FileNotFoundError, match=r"requirements-onnx\.txt"):
        build_job_package(tmp_path / "out", source_dir=pkg, runtime="onnx")
