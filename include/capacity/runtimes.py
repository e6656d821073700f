"""Facts of the job's model runtimes that both EMR backends size with: arches, worker memory."""

from __future__ import annotations

RUNTIME_ARCHES: dict[str, tuple[str, ...]] = {
    "litert": ("x86_64", "aarch64"),
    "onnx": ("x86_64", "aarch64"),
    "keras": ("x86_64",),  # tensorflow-cpu 2.21 has no aarch64 wheel
}
"""CPU architectures each model runtime's node requirements have wheels for."""


# Peak RSS of one Spark Python worker of the UDF, MB = fixed + per image of a batch at
# 224 px (scales with the pixel count). Measured with each runtime's predictor, pandas and
# pyarrow imported, one thread, after 3 batches (batch 16 and 64 solved for the two terms;
# 2026-12-02, 2-core AMD EPYC, Python 3.11): litert 271/657 MB, onnx 374/1000 MB,
# keras 945/1733 MB. See docs/executor-sizing.md.
PYTHON_WORKER_MEMORY_MB: dict[str, tuple[float, float]] = {
    "litert": (143.0, 8.0),
    "onnx": (166.0, 13.0),
    "keras": (682.0, 16.4),
}
