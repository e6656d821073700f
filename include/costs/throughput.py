"""Throughput and start-up figures the budget estimates assume (images/s per vCPU by runtime)."""

from __future__ import annotations

# Featurisation throughput per vCPU, images/s, by model runtime (the job's ``--runtime``).
# Measured 2026-12-02 on a 2-core AMD EPYC dev machine with AVX2/FMA and no AVX-512
# (python benchmarks/runtimes.py --procs 2): MobileNetV2 224 px, batch 64, one
# thread per process, 2 processes: ai-edge-litert 176 images/s, ONNX Runtime 177; Keras 3
# predict_on_batch 25-27 per core. The slower machine's figures on purpose (on an AVX-512
# one, benchmarks/featurize.py measured the Spark job at 107 (litert) / 53 (keras) per
# core): EMR's vCPUs are hyperthreads. The budget guard's estimate, not a promise.
THROUGHPUT_IMAGES_PER_S_PER_VCPU: dict[str, float] = {
    "litert": 88.0,
    "onnx": 88.0,
    "keras": 25.0,
}

DEFAULT_RUNTIME = "litert"
"""The runtime assumed when the job settings name none (= the job's default)."""

CLUSTER_START_BOOTSTRAP_S = 600
"""Seconds from RunJobFlow to a WAITING cluster with the bootstrap installed (~10 minutes:
the figure build_run_plan already allows for, 45 minutes at most)."""

SERVERLESS_START_S = 120
"""Seconds from StartJobRun to running executors (application start + worker start, ~1-2
minutes without pre-initialised capacity): the budget estimate's start time."""
