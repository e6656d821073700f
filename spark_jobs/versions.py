"""Versions of what computed a run's results, from package metadata (nothing imported:
with litert/onnx the driver has no TensorFlow)."""

from __future__ import annotations

import sys

RUNTIME_PACKAGES = {
    "litert": "ai-edge-litert",
    "onnx": "onnxruntime",
    "keras": "tensorflow-cpu",
}


def package_versions(runtime: str) -> dict[str, str]:
    """Python and the packages of the job and of ``runtime`` (``metrics.json``)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["pyspark", "numpy", "pandas", "pyarrow", "pillow", RUNTIME_PACKAGES[runtime]]
    found = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # EMR's own pyspark is not a pip distribution
            found[name] = "unknown"
    return found


def feature_versions(runtime: str) -> dict[str, str]:
    """The versions a feature's bits may depend on: Pillow (decoding) and the runtime."""
    found = package_versions(runtime)
    return {name: found[name] for name in ("pillow", RUNTIME_PACKAGES[runtime])}
