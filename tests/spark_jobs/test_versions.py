"""Versions recorded in ``metrics.json``, including a pyspark that pip does not know (EMR)."""

from __future__ import annotations

import importlib.metadata
import sys

import pyspark
import pytest

from spark_jobs import versions


def _not_installed(*missing: str):
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name in missing:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    return version


def test_pip_distributions_report_their_metadata_version() -> None:
    found = versions.package_versions("litert")

    assert found["pyspark"] == importlib.metadata.version("pyspark")
    assert found["ai-edge-litert"] == importlib.metadata.version("ai-edge-litert")
    assert found["python"] == sys.version.split()[0]


def test_pyspark_outside_pip_reports_its_module_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # EMR and EMR Serverless put their pyspark on PYTHONPATH: no distribution metadata.
    monkeypatch.setattr(importlib.metadata, "version", _not_installed("pyspark"))

    assert versions.package_versions("litert")["pyspark"] == pyspark.__version__


def test_pyspark_neither_installed_nor_importable_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", _not_installed("pyspark"))
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError

    assert versions.package_versions("litert")["pyspark"] == "unknown"


def test_a_missing_runtime_package_is_unknown_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", _not_installed("onnxruntime"))

    found = versions.package_versions("onnx")

    assert found["onnxruntime"] == "unknown"
    assert found["numpy"] == importlib.metadata.version("numpy")


def test_feature_versions_keep_only_decoder_and_runtime() -> None:
    assert set(versions.feature_versions("keras")) == {"pillow", "tensorflow-cpu"}
