"""Driver and executor workers of an EMR Serverless job run, within what AWS allows.

EMR Serverless runs each Spark driver and executor on its own worker of 1, 2, 4, 8 or 16
vCPU, with memory in a range (and increment) per vCPU count and 20-200 GB of ephemeral
disk (EMR Serverless User Guide, "Understanding application behavior", *Supported worker
configurations*). Spark's memory overhead counts inside the worker: heap + overhead must
fit the worker's memory, so the heap is solved the way :mod:`include.capacity.worker_memory`
solves it for a YARN container (:func:`include.capacity.worker_memory.heap_for`), with the same
measured Python-worker peaks (one Python worker per vCPU, ``spark.task.cpus`` = 1).

Dynamic allocation is off and the executor count fixed, as on the cluster: the job splits
its work by the task slots it was given, and the application's ``maximumCapacity`` is
exactly the run's workers, so a run cannot scale past what its Params say.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from include.capacity.runtimes import RUNTIME_ARCHES
from include.capacity.worker_memory import MIN_HEAP_MB, SizingError, heap_for, python_worker_mb

WORKER_MEMORY_GB: dict[int, tuple[int, int, int]] = {
    1: (2, 8, 1),
    2: (4, 16, 1),
    4: (8, 30, 1),
    8: (16, 60, 4),
    16: (32, 120, 8),
}
"""vCPU per worker -> (min GB, max GB, increment GB) of its memory (AWS's table)."""
WORKER_DISK_GB = (20, 200)
"""Ephemeral storage per worker, GB (20 are free)."""
DRIVER_PYTHON_MB = 1024
"""An allowance (not a measurement) for the driver's Python process: the job's driver
holds the PCA's Gram matrix (1280 x 1280) and the metrics, not the model's batches."""
ARCHITECTURES: dict[str, str] = {"X86_64": "x86_64", "ARM64": "aarch64"}
"""The application's ``architecture`` -> the machine name ``RUNTIME_ARCHES`` uses."""


def check_worker(role: str, vcpu: int, memory_gb: int, disk_gb: int) -> None:
    """Raise :class:`SizingError` naming the Param when a worker size is not allowed."""
    if vcpu not in WORKER_MEMORY_GB:
        raise SizingError(
            f"{role}_vcpu must be one of {', '.join(map(str, WORKER_MEMORY_GB))} "
            f"(EMR Serverless worker sizes), got {vcpu}"
        )
    low, high, step = WORKER_MEMORY_GB[vcpu]
    if not low <= memory_gb <= high or (memory_gb - low) % step:
        raise SizingError(
            f"{role}_memory_gb={memory_gb} is not allowed with {vcpu} vCPU: EMR Serverless "
            f"allows {low}-{high} GB in steps of {step} GB"
        )
    if not WORKER_DISK_GB[0] <= disk_gb <= WORKER_DISK_GB[1]:
        raise SizingError(
            f"worker_disk_gb must be between {WORKER_DISK_GB[0]} and {WORKER_DISK_GB[1]}, "
            f"got {disk_gb}"
        )


def check_architecture(architecture: str, runtime: str) -> None:
    """The runtime must have wheels for the application's CPU (``RUNTIME_ARCHES``)."""
    if architecture not in ARCHITECTURES:
        raise SizingError(f"architecture must be X86_64 or ARM64, got {architecture!r}")
    if ARCHITECTURES[architecture] not in RUNTIME_ARCHES[runtime]:
        raise SizingError(
            f"runtime {runtime!r} cannot run on {architecture}: its requirements have no "
            f"{ARCHITECTURES[architecture]} wheels; use runtime litert or onnx, or X86_64"
        )


@dataclass(frozen=True)
class ServerlessSizing:
    """The spark-submit settings of one job run's workers, and how they were derived."""

    runtime: str
    executors: int
    executor_vcpu: int
    executor_memory_gb: int
    executor_heap_mb: int
    executor_overhead_mb: int
    python_worker_mb: int
    driver_vcpu: int
    driver_memory_gb: int
    driver_heap_mb: int
    driver_overhead_mb: int
    disk_gb: int

    @property
    def task_slots(self) -> int:
        return self.executors * self.executor_vcpu

    @property
    def workers(self) -> int:
        return 1 + self.executors

    @property
    def total_vcpu(self) -> int:
        return self.driver_vcpu + self.executors * self.executor_vcpu

    @property
    def total_memory_gb(self) -> int:
        return self.driver_memory_gb + self.executors * self.executor_memory_gb

    @property
    def total_disk_gb(self) -> int:
        return self.workers * self.disk_gb

    def maximum_capacity(self) -> dict[str, str]:
        """The application's ``maximumCapacity``: exactly this run's workers."""
        return {
            "cpu": f"{self.total_vcpu} vCPU",
            "memory": f"{self.total_memory_gb} GB",
            "disk": f"{self.total_disk_gb} GB",
        }

    def spark_conf(self) -> dict[str, str]:
        """``--conf`` values of the job run's sparkSubmitParameters."""
        return {
            "spark.dynamicAllocation.enabled": "false",
            "spark.executor.instances": str(self.executors),
            "spark.executor.cores": str(self.executor_vcpu),
            "spark.executor.memory": f"{self.executor_heap_mb}m",
            "spark.executor.memoryOverhead": f"{self.executor_overhead_mb}m",
            "spark.driver.cores": str(self.driver_vcpu),
            "spark.driver.memory": f"{self.driver_heap_mb}m",
            "spark.driver.memoryOverhead": f"{self.driver_overhead_mb}m",
            "spark.emr-serverless.executor.disk": f"{self.disk_gb}G",
            "spark.emr-serverless.driver.disk": f"{self.disk_gb}G",
            "spark.task.cpus": "1",
            "spark.default.parallelism": str(self.task_slots),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "task_slots": self.task_slots,
            "total_vcpu": self.total_vcpu,
            "total_memory_gb": self.total_memory_gb,
            "total_disk_gb": self.total_disk_gb,
        }


def size_serverless_workers(
    *,
    runtime: str,
    batch_size: int,
    image_size: int,
    executors: int,
    executor_vcpu: int,
    executor_memory_gb: int,
    driver_vcpu: int,
    driver_memory_gb: int,
    disk_gb: int,
) -> ServerlessSizing:
    """Workers within AWS's allowed sizes whose heap + overhead hold the model's workers.

    Raises :class:`SizingError` (a ``ValueError``) naming the Param to change.
    """
    if executors < 1:
        raise SizingError(f"executors must be >= 1, got {executors}")
    check_worker("executor", executor_vcpu, executor_memory_gb, disk_gb)
    check_worker("driver", driver_vcpu, driver_memory_gb, disk_gb)
    worker = python_worker_mb(runtime, batch_size=batch_size, image_size=image_size)
    python = executor_vcpu * worker
    executor_mb = executor_memory_gb * 1024
    heap = heap_for(executor_mb, python)
    if heap < MIN_HEAP_MB:
        high = WORKER_MEMORY_GB[executor_vcpu][1]
        raise SizingError(
            f"an executor of {executor_vcpu} vCPU and {executor_memory_gb} GB cannot hold "
            f"{executor_vcpu} {runtime} worker(s) at batch {batch_size} and {image_size} px "
            f"({python} MB) beside a {MIN_HEAP_MB} MB heap: raise executor_memory_gb (up to "
            f"{high}), lower batch_size, or use runtime litert"
        )
    driver_mb = driver_memory_gb * 1024
    driver_heap = heap_for(driver_mb, DRIVER_PYTHON_MB)
    if driver_heap < MIN_HEAP_MB:
        raise SizingError(
            f"a driver of {driver_memory_gb} GB leaves less than a {MIN_HEAP_MB} MB heap "
            f"beside its Python ({DRIVER_PYTHON_MB} MB): raise driver_memory_gb"
        )
    return ServerlessSizing(
        runtime=runtime,
        executors=executors,
        executor_vcpu=executor_vcpu,
        executor_memory_gb=executor_memory_gb,
        executor_heap_mb=heap,
        executor_overhead_mb=executor_mb - heap,
        python_worker_mb=worker,
        driver_vcpu=driver_vcpu,
        driver_memory_gb=driver_memory_gb,
        driver_heap_mb=driver_heap,
        driver_overhead_mb=driver_mb - driver_heap,
        disk_gb=disk_gb,
    )
