"""Versions of what computed a run's results, from package metadata (nothing imported:
with litert/onnx the driver has no TensorFlow)."""

from __future__ import annotations

import importlib.metadata
import sys

RUNTIME_PACKAGES = {
    "litert": "ai-edge-litert",
    "onnx": "onnxruntime",
    "keras": "tensorflow-cpu",
}


def package_versions(runtime: str) -> dict[str, str]:
    """Python and the packages of the job and of ``runtime`` (``metrics.json``)."""

    names = ["pyspark", "numpy", "pandas", "pyarrow", "pillow", RUNTIME_PACKAGES[runtime]]
    found = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = _module_version(name)
    return found


def _module_version(name: str) -> str:
    """``name``'s ``__version__`` when it is importable but not a pip distribution (EMR and
    EMR Serverless put their own pyspark on ``PYTHONPATH``), else ``"unknown"``.

    Only pyspark is asked this way: importing it is cheap on a node that runs Spark, and the
    other packages are always pip distributions where they are installed at all.
    """
    if name != "pyspark":
        return "unknown"
    try:
        import pyspark  # noqa: PLC0415 (optional dependency)
    except ImportError:
        return "unknown"
    return str(getattr(pyspark, "__version__", "unknown"))


def feature_versions(runtime: str) -> dict[str, str]:
    """The versions a feature's bits may depend on: Pillow (decoding) and the runtime."""
    found = package_versions(runtime)
    return {name: found[name] for name in ("pillow", RUNTIME_PACKAGES[runtime])}
