"""Memory of a Spark Python worker and the JVM heap beside it: the sizing both backends solve."""

from __future__ import annotations

import math

from include.capacity.runtimes import PYTHON_WORKER_MEMORY_MB

PYTHON_MARGIN = 1.25
"""Headroom on the measured worker peak (allocator fragmentation, larger JPEGs)."""

MIN_HEAP_MB = 1024

JVM_OVERHEAD_MIN_MB = 384

JVM_OVERHEAD_FRACTION = 0.10


class SizingError(ValueError):
    """The node cannot hold the executors this runtime and batch size need."""


def python_worker_mb(runtime: str, *, batch_size: int, image_size: int) -> int:
    """Peak memory of one Python worker of the UDF, with :data:`PYTHON_MARGIN`, in MB."""
    try:
        fixed, per_image = PYTHON_WORKER_MEMORY_MB[runtime]
    except KeyError:
        raise ValueError(f"no measured worker memory for runtime {runtime!r}") from None
    measured = fixed + batch_size * per_image * (image_size / 224) ** 2
    return math.ceil(measured * PYTHON_MARGIN)


def heap_for(container_mb: int, python_mb: int) -> int:
    """The JVM heap of a container of ``container_mb`` whose Python workers need ``python_mb``.

    container = heap + python + max(384, 0.1 * heap) (Spark's default off-heap rule), solved
    for the heap; the overhead to set is ``container_mb - heap``. May be below
    :data:`MIN_HEAP_MB` (or negative): callers refuse that with what to change.
    """
    heap = container_mb - python_mb - JVM_OVERHEAD_MIN_MB
    if heap * JVM_OVERHEAD_FRACTION > JVM_OVERHEAD_MIN_MB:
        heap = math.floor((container_mb - python_mb) / (1 + JVM_OVERHEAD_FRACTION))
    return heap
