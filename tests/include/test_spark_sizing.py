"""Task slots and the dynamic-allocation pins from the cluster's shape (pure)."""

from __future__ import annotations

import pytest

from include.config import ALLOWED_INSTANCE_TYPES, INSTANCE_VCPUS
from include.spark_sizing import cluster_layout


def test_every_allowed_instance_type_has_a_vcpu_count():
    assert set(INSTANCE_VCPUS) == set(ALLOWED_INSTANCE_TYPES)
    assert all(v >= 1 for v in INSTANCE_VCPUS.values())


def test_slots_are_core_nodes_times_vcpus_and_one_executor_per_node_is_pinned():
    layout = cluster_layout("m5.2xlarge", 10)  # 80 vCPUs on the core nodes
    assert layout.task_slots == 80
    assert layout.spark_conf() == {
        "spark.dynamicAllocation.minExecutors": "10",
        "spark.dynamicAllocation.initialExecutors": "10",
    }


def test_an_executor_size_gives_the_executor_count_and_pins_it():
    layout = cluster_layout("m5.4xlarge", 5, executor_cores=5)  # 3 per 16-vCPU node
    assert (layout.executors, layout.task_slots) == (15, 75)
    assert layout.spark_conf() == {
        "spark.dynamicAllocation.minExecutors": "15",
        "spark.dynamicAllocation.initialExecutors": "15",
        "spark.dynamicAllocation.maxExecutors": "15",
        "spark.executor.cores": "5",
    }
    assert layout.spark_conf() is not layout.spark_conf()  # a new dict each call


@pytest.mark.parametrize(
    ("instance_type", "nodes", "cores", "message"),
    [
        ("x9.huge", 2, None, "no vCPU count for instance type 'x9.huge'"),
        ("m5.xlarge", 0, None, "core_nodes must be >= 1"),
        ("m5.xlarge", 2, 5, "between 1 and the 4 vCPUs of m5.xlarge"),
        ("m5.xlarge", 2, 0, "between 1 and the 4 vCPUs"),
    ],
)
def test_impossible_layouts_are_refused(instance_type, nodes, cores, message):
    with pytest.raises(ValueError, match=message):
        cluster_layout(instance_type, nodes, executor_cores=cores)
