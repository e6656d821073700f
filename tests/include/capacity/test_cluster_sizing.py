"""Executor sizing: every container fits its node, every vCPU gets a slot, Python fits YARN."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.capacity.cluster_sizing import (
    AM_CONTAINER_MB,
    MAX_EXECUTOR_CORES,
    YARN_MIN_ALLOCATION_MB,
    executor_container_mb,
    executor_cores_for,
    size_executors,
    sizing_table,
)
from include.capacity.instance_types import INSTANCE_TYPES
from include.capacity.prices import ALLOWED_INSTANCE_TYPES
from include.capacity.runtimes import RUNTIME_ARCHES
from include.capacity.worker_memory import (
    JVM_OVERHEAD_MIN_MB,
    MIN_HEAP_MB,
    SizingError,
    python_worker_mb,
)

CASES = [
    (instance_type, runtime, batch, size)
    for instance_type in ALLOWED_INSTANCE_TYPES
    for runtime in ("litert", "onnx", "keras")
    for batch, size in ((16, 224), (64, 224), (8, 512))
    if INSTANCE_TYPES[instance_type].arch in RUNTIME_ARCHES[runtime]
]


def test_every_allowed_instance_type_has_yarn_figures():
    assert set(ALLOWED_INSTANCE_TYPES) == set(INSTANCE_TYPES)


@pytest.mark.parametrize(("instance_type", "runtime", "batch", "size"), CASES)
def test_sizing_fits_the_node_and_uses_every_vcpu(instance_type, runtime, batch, size):
    node = INSTANCE_TYPES[instance_type]
    cores = executor_cores_for(node.vcpus)
    python = cores * python_worker_mb(runtime, batch_size=batch, image_size=size)
    share = executor_container_mb(node.yarn_memory_mb, node.vcpus // cores)
    if python + MIN_HEAP_MB + JVM_OVERHEAD_MIN_MB > share:
        # Refused only when the workers really cannot fit beside a minimal heap.
        with pytest.raises(SizingError, match="lower batch_size"):
            size_executors(instance_type, 3, runtime=runtime, batch_size=batch, image_size=size)
        return
    sizing = size_executors(instance_type, 3, runtime=runtime, batch_size=batch, image_size=size)
    # Every container fits the node's YARN memory (and YARN's maximum allocation), with
    # room left for the ApplicationMaster's container, which lands on one of the nodes.
    assert sizing.executors_per_node * sizing.container_mb + AM_CONTAINER_MB <= (
        node.yarn_memory_mb
    )
    assert sizing.container_mb <= node.yarn_memory_mb
    # YARN rounds a request up to its minimum allocation: already a multiple, granted as is.
    assert sizing.container_mb % YARN_MIN_ALLOCATION_MB == 0
    # Every vCPU of every core node is a task slot.
    assert sizing.executors_per_node * sizing.executor_cores == node.vcpus
    assert sizing.task_slots == 3 * node.vcpus
    assert sizing.executor_cores <= MAX_EXECUTOR_CORES
    # The Python workers' memory is inside what YARN grants beyond the heap, with the
    # JVM's own off-heap share left over.
    python = sizing.executor_cores * sizing.python_worker_mb
    jvm_share = max(JVM_OVERHEAD_MIN_MB, 0.10 * sizing.executor_memory_mb)
    assert python + jvm_share <= sizing.memory_overhead_mb + 1
    assert sizing.executor_memory_mb >= MIN_HEAP_MB
    conf = sizing.spark_conf()
    assert conf["spark.executor.instances"] == str(3 * sizing.executors_per_node)
    assert conf["spark.dynamicAllocation.enabled"] == "false"
    assert conf["spark.task.cpus"] == "1"
    assert "spark.executor.pyspark.memory" not in conf
    # The AM's size is pinned to what the sizing left room for.
    assert conf["spark.yarn.am.memory"] == "512m"
    assert conf["spark.yarn.am.memoryOverhead"] == "384m"


def test_the_fast_runtimes_fit_every_allowed_type_at_the_default_batch():
    for instance_type in ALLOWED_INSTANCE_TYPES:
        for runtime in ("litert", "onnx"):
            if runtime == "onnx" and instance_type.startswith("c"):
                continue  # 16 GiB compute nodes: onnx needs a smaller batch there
            size_executors(instance_type, 2, runtime=runtime, batch_size=64, image_size=224)


def test_worker_memory_grows_with_batch_and_pixels():
    small = python_worker_mb("litert", batch_size=16, image_size=224)
    assert python_worker_mb("litert", batch_size=64, image_size=224) > small
    assert python_worker_mb("litert", batch_size=16, image_size=448) > small
    assert python_worker_mb("keras", batch_size=16, image_size=224) > small


def test_a_node_too_small_for_the_workers_is_refused_with_advice():
    with pytest.raises(SizingError, match="lower batch_size") as excinfo:
        size_executors("c5.2xlarge", 2, runtime="keras", batch_size=256, image_size=224)
    assert "c5.2xlarge" in str(excinfo.value)


def test_keras_is_refused_on_graviton():
    with pytest.raises(SizingError, match="no aarch64 wheels"):
        size_executors("m7g.xlarge", 2, runtime="keras", batch_size=64, image_size=224)
    # The fast runtimes run there.
    assert size_executors("m7g.xlarge", 2, runtime="litert", batch_size=64, image_size=224)


def test_unknown_instance_type_is_refused():
    with pytest.raises(SizingError, match="INSTANCE_TYPES"):
        size_executors("x1.nano", 2, runtime="litert", batch_size=64, image_size=224)


def test_the_am_container_leaves_every_node_short_of_a_whole_share():
    """The fault an independent review found: each executor took 100 % of a node's YARN
    memory (m5.xlarge: 8192 + 4096 = 12288 of 12288 MB), so the node hosting the AM could
    not host its executor (1 core node: none started; 2: half)."""
    sizing = size_executors("m5.xlarge", 1, runtime="litert", batch_size=64, image_size=224)
    assert AM_CONTAINER_MB == 896  # 512 MB + 384 MB overhead, a multiple of 32 MB
    assert sizing.container_mb == 12288 - 896
    assert sizing.container_mb + sizing.am_container_mb <= sizing.node_yarn_memory_mb
    assert sizing.as_dict()["am_container_mb"] == 896


def test_the_documented_sizing_table_is_the_codes():
    page = (Path(__file__).resolve().parents[3] / "docs" / "executor-sizing.md").read_text()
    assert sizing_table() in page, (
        "rerun python -m include.capacity.cluster_sizing into docs/executor-sizing.md"
    )
