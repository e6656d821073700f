"""Executors sized for YARN on EMR, explicitly: a pure function of the node and the runtime.

EMR's defaults (dynamic allocation, ``spark.executor.memory`` from the instance type, the
default ``memoryOverhead`` of 10 % of the heap) know nothing of the model running in each
Python worker. One MobileNetV2 worker holds the model and a decoded batch (hundreds of MB,
``include.capacity.runtimes.PYTHON_WORKER_MEMORY_MB``), which Spark counts in the container only
through ``spark.executor.memoryOverhead``: a 10 % overhead is the classic "Container killed
by YARN for exceeding memory limits". :func:`size_executors` instead computes, for every
allowed instance type:

* every vCPU of every core node is one task slot (``spark.task.cpus`` = 1, one Python
  worker per slot, each runtime told to use one thread);
* executors of at most :data:`MAX_EXECUTOR_CORES` cores (a whole number per node, so no
  vCPU is left without a slot);
* each executor's container (heap + overhead) a whole share of the node's YARN memory
  (``yarn.nodemanager.resource.memory-mb``, AWS's published default) less the room of
  Spark's YARN ApplicationMaster (:data:`AM_CONTAINER_MB`), a multiple of YARN's minimum
  allocation: the AM's container lands on one of the core nodes (the primary node runs no
  NodeManager), and with every node sized to hold it beside its executors, all of them fit
  wherever it lands (Spark, "Running on YARN": in client mode the AM is a container of
  ``spark.yarn.am.memory`` + ``spark.yarn.am.memoryOverhead``; both are pinned here);
* the overhead = its Python workers' measured peak (with :data:`PYTHON_MARGIN`) + the JVM's
  own off-heap (Spark's default rule: max(384 MB, 10 % of the heap));
* a fixed executor count (``spark.executor.instances``, dynamic allocation off): the
  cluster serves one step, and under dynamic allocation the job would size itself from the
  executors registered when it starts.

``spark.executor.pyspark.memory`` is not set: it makes Python workers enforce an address-
space limit (RLIMIT_AS), which runtimes that map large virtual areas trip over long before
their real memory is used; the Python memory is counted in the overhead instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from include.capacity.instance_types import INSTANCE_TYPES
from include.capacity.runtimes import RUNTIME_ARCHES
from include.capacity.worker_memory import MIN_HEAP_MB, SizingError, heap_for, python_worker_mb

MAX_EXECUTOR_CORES = 5
"""Spark/EMR guidance: more cores per executor saturate its I/O and GC."""
AM_MEMORY_MB = 512
"""``spark.yarn.am.memory`` (Spark's default, pinned): the client-mode AM only asks YARN for
executors, the driver itself runs on the primary node."""
AM_OVERHEAD_MB = 384
"""``spark.yarn.am.memoryOverhead``: Spark's default max(384 MB, 10 % of 512 MB), pinned."""
YARN_MIN_ALLOCATION_MB = 32
"""EMR's ``yarn.scheduler.minimum-allocation-mb`` (EMR Release Guide, "Task configuration"):
YARN rounds every container up to a multiple of it."""
AM_CONTAINER_MB = -(-(AM_MEMORY_MB + AM_OVERHEAD_MB) // YARN_MIN_ALLOCATION_MB) * (
    YARN_MIN_ALLOCATION_MB
)
"""What the AM's container takes of the node it lands on (896 MB)."""


@dataclass(frozen=True)
class ExecutorSizing:
    """The spark-submit settings for one run's cluster, and how they were derived."""

    instance_type: str
    core_nodes: int
    runtime: str
    executors_per_node: int
    executor_cores: int
    executor_memory_mb: int
    memory_overhead_mb: int
    python_worker_mb: int
    node_yarn_memory_mb: int
    am_container_mb: int = AM_CONTAINER_MB

    @property
    def executors(self) -> int:
        return self.core_nodes * self.executors_per_node

    @property
    def task_slots(self) -> int:
        """Tasks that run at once: every vCPU of every core node."""
        return self.executors * self.executor_cores

    @property
    def container_mb(self) -> int:
        return self.executor_memory_mb + self.memory_overhead_mb

    def spark_conf(self) -> dict[str, str]:
        """``--conf`` values of the step's spark-submit."""
        return {
            "spark.dynamicAllocation.enabled": "false",
            "spark.executor.instances": str(self.executors),
            "spark.executor.cores": str(self.executor_cores),
            "spark.task.cpus": "1",
            "spark.executor.memory": f"{self.executor_memory_mb}m",
            "spark.executor.memoryOverhead": f"{self.memory_overhead_mb}m",
            "spark.default.parallelism": str(self.task_slots),
            "spark.yarn.am.memory": f"{AM_MEMORY_MB}m",
            "spark.yarn.am.memoryOverhead": f"{AM_OVERHEAD_MB}m",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "executors": self.executors,
            "task_slots": self.task_slots,
            "container_mb": self.container_mb,
        }


def executor_container_mb(node_yarn_memory_mb: int, executors_per_node: int) -> int:
    """One executor's container: a whole share of the node's YARN memory less the AM's
    room, rounded down to YARN's minimum allocation (YARN rounds requests up: a container
    that is already a multiple of it is granted exactly)."""
    share = (node_yarn_memory_mb - AM_CONTAINER_MB) // executors_per_node
    return share // YARN_MIN_ALLOCATION_MB * YARN_MIN_ALLOCATION_MB


def executor_cores_for(vcpus: int) -> int:
    """The largest core count <= :data:`MAX_EXECUTOR_CORES` that divides ``vcpus``."""
    return max(c for c in range(1, min(vcpus, MAX_EXECUTOR_CORES) + 1) if vcpus % c == 0)


def size_executors(
    instance_type: str,
    core_nodes: int,
    *,
    runtime: str,
    batch_size: int,
    image_size: int,
) -> ExecutorSizing:
    """Executors that use every vCPU of the core nodes and fit their YARN memory.

    Raises :class:`SizingError` (unknown type, a runtime without wheels for the node's
    architecture, or a node too small for the workers) with what to change.
    """
    try:
        node = INSTANCE_TYPES[instance_type]
    except KeyError:
        raise SizingError(
            f"no YARN figures for instance type {instance_type!r}; known: "
            f"{', '.join(sorted(INSTANCE_TYPES))} "
            "(include/capacity/instance_types.py INSTANCE_TYPES)"
        ) from None
    if node.arch not in RUNTIME_ARCHES[runtime]:
        raise SizingError(
            f"runtime {runtime!r} cannot run on {instance_type} ({node.arch}): its node "
            f"requirements have no {node.arch} wheels; use runtime litert or onnx, or an "
            "x86_64 instance type"
        )
    if core_nodes < 1:
        raise SizingError(f"core_nodes must be >= 1, got {core_nodes}")
    cores = executor_cores_for(node.vcpus)
    per_node = node.vcpus // cores
    container = executor_container_mb(node.yarn_memory_mb, per_node)
    worker = python_worker_mb(runtime, batch_size=batch_size, image_size=image_size)
    python = cores * worker
    heap = heap_for(container, python)
    if heap < MIN_HEAP_MB:
        raise SizingError(
            f"{instance_type} gives each of its {per_node} executor(s) {container} MB of "
            f"YARN memory, but {cores} {runtime} worker(s) at batch {batch_size} and "
            f"{image_size} px need {python} MB beside a {MIN_HEAP_MB} MB heap: lower "
            "batch_size, use runtime litert, or a larger instance type"
        )
    return ExecutorSizing(
        instance_type=instance_type,
        core_nodes=core_nodes,
        runtime=runtime,
        executors_per_node=per_node,
        executor_cores=cores,
        executor_memory_mb=heap,
        memory_overhead_mb=container - heap,
        python_worker_mb=worker,
        node_yarn_memory_mb=node.yarn_memory_mb,
    )


def _sizing_cell(instance_type: str, runtime: str, *, batch_size: int, image_size: int) -> str:
    node = INSTANCE_TYPES[instance_type]
    if node.arch not in RUNTIME_ARCHES[runtime]:
        return f"refused: no {node.arch} wheels"
    try:
        s = size_executors(
            instance_type, 1, runtime=runtime, batch_size=batch_size, image_size=image_size
        )
    except SizingError:
        fits = next(
            (
                b
                for b in range(batch_size - 1, 0, -1)
                if _fits(instance_type, runtime, b, image_size)
            ),
            0,
        )
        return f"refused at batch {batch_size} (fits at <= {fits})"
    return (
        f"{s.executors_per_node} x {s.executor_cores}, "
        f"{s.executor_memory_mb} + {s.memory_overhead_mb}"
    )


def _fits(instance_type: str, runtime: str, batch_size: int, image_size: int) -> bool:
    try:
        size_executors(
            instance_type, 1, runtime=runtime, batch_size=batch_size, image_size=image_size
        )
    except SizingError:
        return False
    return True


def sizing_table(*, batch_size: int = 64, image_size: int = 224) -> str:
    """The table of docs/executor-sizing.md (one core node), rows of equal figures merged:
    ``python -m include.capacity.cluster_sizing`` prints it, to paste there."""
    runtimes = ("litert", "onnx", "keras")
    rows: dict[tuple[str, ...], list[str]] = {}
    for instance_type, node in INSTANCE_TYPES.items():
        cells = (
            f"{node.vcpus} / {node.memory_gib} / {node.yarn_memory_mb}",
            *(
                _sizing_cell(instance_type, r, batch_size=batch_size, image_size=image_size)
                for r in runtimes
            ),
        )
        rows.setdefault((node.arch, *cells), []).append(instance_type)
    lines = [
        "| instance | vCPU / GiB / YARN MB | litert: executors/node x cores, heap + overhead MB "
        "| onnx | keras |",
        "|---|---|---|---|---|",
    ]
    for (arch, *cells), names in rows.items():
        name = " / ".join(names) + (" (Graviton)" if arch == "aarch64" else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(sizing_table())
