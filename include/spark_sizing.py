"""How many tasks a cluster runs at once, and the Spark settings that hold it there (pure).

The job splits its featurisation into a multiple of the cluster's task slots. It cannot
ask Spark: under YARN dynamic allocation (EMR's default) ``defaultParallelism`` counts
only the executors registered when the job looks, often a fraction of the cluster in the
first seconds. The plan knows the cluster, so it passes the slots (``--task-slots``) and
pins the executors (``minExecutors = initialExecutors``): the cluster serves this one
step, so releasing idle executors between stages (PCA on the driver, then projection)
would only cost their restart.

:func:`cluster_layout` takes an ``executor_cores`` (and, later, the rest of an executor
sizing) from the caller; without it the layout keeps EMR's own executor size and pins
one executor per core node, the least every node runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.config import INSTANCE_VCPUS


@dataclass(frozen=True)
class ExecutorLayout:
    """Executors and task slots of one cluster (core nodes only: the primary node runs
    the driver, not executors)."""

    core_nodes: int
    vcpus_per_node: int
    executors: int
    executor_cores: int | None
    task_slots: int

    def spark_conf(self) -> dict[str, str]:
        """``--conf`` settings of the step's spark-submit (a new dict each call)."""
        conf = {
            "spark.dynamicAllocation.minExecutors": str(self.executors),
            "spark.dynamicAllocation.initialExecutors": str(self.executors),
        }
        if self.executor_cores is not None:
            conf["spark.executor.cores"] = str(self.executor_cores)
            # Every executor the nodes can hold is already there: none to add later.
            conf["spark.dynamicAllocation.maxExecutors"] = str(self.executors)
        return conf


def cluster_layout(
    instance_type: str,
    core_nodes: int,
    *,
    executor_cores: int | None = None,
    vcpus: dict[str, int] | None = None,
) -> ExecutorLayout:
    """The layout of ``core_nodes`` nodes of ``instance_type``.

    Task slots are the YARN vcores of the core nodes (EMR gives YARN one vcore per
    vCPU) when ``executor_cores`` is not given, else ``executors x executor_cores`` with
    ``vcpus // executor_cores`` executors per node. Raises ValueError for an instance type
    without a vCPU count or impossible sizes.
    """
    table = INSTANCE_VCPUS if vcpus is None else vcpus
    if instance_type not in table:
        raise ValueError(
            f"no vCPU count for instance type {instance_type!r}; add it to "
            "include/config.py INSTANCE_VCPUS"
        )
    if core_nodes < 1:
        raise ValueError(f"core_nodes must be >= 1, got {core_nodes}")
    node_vcpus = table[instance_type]
    if executor_cores is None:
        return ExecutorLayout(core_nodes, node_vcpus, core_nodes, None, core_nodes * node_vcpus)
    if not 1 <= executor_cores <= node_vcpus:
        raise ValueError(
            f"executor_cores must be between 1 and the {node_vcpus} vCPUs of "
            f"{instance_type}, got {executor_cores}"
        )
    executors = core_nodes * (node_vcpus // executor_cores)
    return ExecutorLayout(
        core_nodes, node_vcpus, executors, executor_cores, executors * executor_cores
    )
