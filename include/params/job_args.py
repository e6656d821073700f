"""Arguments of the Spark job, built once for both DAGs (EMR step and local spark-submit).

The job's command line is defined by ``spark_jobs/cli.py``; this module is the only place
on the Airflow side that spells its flags, so the EMR and local DAGs cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Mode = Literal["mini", "full"]
PcaSolver = Literal["gram", "mllib"]
Runtime = Literal["litert", "onnx", "keras"]
PCA_SOLVERS: tuple[PcaSolver, ...] = ("gram", "mllib")
RUNTIMES: tuple[Runtime, ...] = ("litert", "onnx", "keras")
"""= ``spark_jobs.runtimes.RUNTIMES`` (that module is not imported on the Airflow side)."""
MINI_MAX_IMAGES = 200
"""Mini mode's default total cap (the DAGs' ``max_images`` Param, ``make run MODE=mini``)."""
CONVERTED_RUNTIMES: tuple[Runtime, ...] = ("litert", "onnx")
"""Runtimes that run a converted model file: the executors need no TensorFlow."""


@dataclass(frozen=True)
class JobSettings:
    """What the job computes; independent of where it runs.

    Exactly one of ``pca_variance`` / ``pca_k`` is set. ``max_images`` and ``per_class``
    only apply in mini mode (a deterministic, seeded sample).
    """

    mode: Mode = "mini"
    max_images: int | None = MINI_MAX_IMAGES
    per_class: int | None = None
    seed: int = 42
    pca_variance: float | None = 0.95
    pca_k: int | None = None
    pca_solver: PcaSolver = "gram"
    weights: str = "imagenet"
    image_size: int = 224
    batch_size: int = 64
    runtime: Runtime = "litert"
    task_slots: int | None = None
    """Task slots of the cluster (``include/capacity/cluster_sizing.py``); None: the job uses
    Spark's defaultParallelism (right for local[N])."""

    def __post_init__(self) -> None:
        if self.mode not in ("mini", "full"):
            raise ValueError(f"mode must be 'mini' or 'full', got {self.mode!r}")
        if (self.pca_variance is None) == (self.pca_k is None):
            raise ValueError("set exactly one of pca_variance (0 < v <= 1) or pca_k (>= 1)")
        if self.pca_variance is not None and not 0.0 < self.pca_variance <= 1.0:
            raise ValueError(f"pca_variance must be in (0, 1], got {self.pca_variance}")
        if self.pca_k is not None and not 1 <= self.pca_k <= 1280:
            raise ValueError(f"pca_k must be between 1 and 1280, got {self.pca_k}")
        if self.pca_solver not in PCA_SOLVERS:
            raise ValueError(f"pca_solver must be one of {PCA_SOLVERS}, got {self.pca_solver!r}")
        for name in ("max_images", "per_class", "task_slots"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 when set, got {value}")
        if not self.weights.strip():
            raise ValueError("weights must be 'imagenet', 'none', a file path or an s3:// URI")
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"image_size must be between 32 and 512, got {self.image_size}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if not 1 <= self.batch_size <= 1024:
            raise ValueError(f"batch_size must be between 1 and 1024, got {self.batch_size}")


def build_job_arguments(
    settings: JobSettings,
    *,
    input_uri: str,
    output_uri: str,
    run_id: str,
    model_uri: str | None = None,
    feature_cache_uri: str | None = None,
) -> list[str]:
    """The job's arguments as a list (never a shell string), after the entry script.

    ``model_uri``: the converted model staged for a litert/onnx run; without it the job's
    driver converts the model itself (it needs TensorFlow then, as in the local DAG).
    ``feature_cache_uri``: the job's ``--feature-cache`` (features reused by image content
    and model); not a ``JobSettings`` field because it never changes the results, so it
    stays out of the run fingerprint.
    """
    if model_uri and settings.runtime not in CONVERTED_RUNTIMES:
        raise ValueError(f"runtime {settings.runtime!r} runs no converted model")
    args = [
        "--input",
        input_uri,
        "--output",
        output_uri,
        "--run-id",
        run_id,
        "--mode",
        settings.mode,
        "--seed",
        str(settings.seed),
        "--weights",
        settings.weights,
        "--image-size",
        str(settings.image_size),
        "--batch-size",
        str(settings.batch_size),
        "--pca-solver",
        settings.pca_solver,
        "--runtime",
        settings.runtime,
    ]
    if model_uri:
        args += ["--model", model_uri]
    if feature_cache_uri:
        args += ["--feature-cache", feature_cache_uri]
    if settings.mode == "mini":
        if settings.max_images is not None:
            args += ["--max-images", str(settings.max_images)]
        if settings.per_class is not None:
            args += ["--per-class", str(settings.per_class)]
    if settings.task_slots is not None:
        args += ["--task-slots", str(settings.task_slots)]
    if settings.pca_k is not None:
        args += ["--pca-k", str(settings.pca_k)]
    else:
        args += ["--pca-variance", repr(settings.pca_variance)]
    return args


def safe_run_id(run_id: str) -> str:
    """An Airflow run id as one path segment, safe for folders and S3 keys.

    ``manual__2026-01-01T10:00:00+00:00`` -> ``manual__2026-01-01T10_00_00_00_00``.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._-")
    if not cleaned:
        raise ValueError(f"run id {run_id!r} has no usable characters for a folder name")
    return cleaned[:200]
