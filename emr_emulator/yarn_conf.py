"""What a cluster and a Spark step ask YARN for: the inputs of :mod:`emr_emulator.yarn`.

* :func:`cluster_nodes`: the NodeManagers (CORE and TASK nodes) of a RunJobFlow request
  (instance groups, instance fleets, or the legacy master/slave types), their memory from the
  emulator's own :data:`NODE_TYPES` table or ``yarn-site``, and the scheduler's allocation
  limits;
* :func:`spark_resources`: the AM and executor containers a ``spark-submit`` asks for, from
  its flags, every ``--conf``, the cluster's ``spark-defaults`` and Spark 3.5's own defaults
  (see :mod:`emr_emulator.yarn` for which defaults and why).

The table is the emulator's own: it must not import the project's (``include.config``), so
that it checks the project instead of agreeing with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeType:
    vcpus: int
    memory_gib: int
    nodemanager_mb: int
    """``yarn.nodemanager.resource.memory-mb`` (EMR's default, = maximum-allocation-mb)."""


# vCPUs and memory: EC2 User Guide, instance type specifications. NodeManager memory: EMR
# Release Guide, "Task configuration" (emr-hadoop-task-config), defaults without HBase;
# EMR sets yarn.scheduler.maximum-allocation-mb to the same figure and
# yarn.scheduler.minimum-allocation-mb to 32 for these types. Checked against that page's
# source (github.com/awsdocs/amazon-emr-release-guide, doc_source/emr-hadoop-task-config.md,
# commit 5c6529a, 2022) for m5, c5, r5 and m6g; m6i, c6i and m7g are newer than that copy
# (their figures are those of the same-sized m6g: not checked offline).
NODE_TYPES: dict[str, NodeType] = {
    "m5.xlarge": NodeType(4, 16, 12288),
    "m5.2xlarge": NodeType(8, 32, 24576),
    "m5.4xlarge": NodeType(16, 64, 57344),
    "m5.8xlarge": NodeType(32, 128, 122880),
    "m6i.xlarge": NodeType(4, 16, 11712),
    "m6i.2xlarge": NodeType(8, 32, 23424),
    "c5.xlarge": NodeType(4, 8, 6144),
    "c5.2xlarge": NodeType(8, 16, 12288),
    "c6i.2xlarge": NodeType(8, 16, 11712),
    "r5.xlarge": NodeType(4, 32, 24576),
    "r5.2xlarge": NodeType(8, 64, 57344),
    "m6g.xlarge": NodeType(4, 16, 11712),
    "m6g.2xlarge": NodeType(8, 32, 23424),
    "m7g.xlarge": NodeType(4, 16, 11712),
    "m7g.2xlarge": NodeType(8, 32, 23424),
}

MIN_ALLOCATION_MB = 32
"""EMR's ``yarn.scheduler.minimum-allocation-mb`` (EMR Release Guide, "Task configuration")."""

# Spark 3.5 "Configuration" / "Running on YARN" defaults.
SPARK_DEFAULTS = {
    "spark.executor.memory": "1g",
    "spark.executor.cores": "1",
    "spark.executor.instances": "2",
    "spark.driver.memory": "1g",
    "spark.yarn.am.memory": "512m",
    "spark.submit.deployMode": "client",
}
EMR_SPARK_DEFAULTS = {"spark.dynamicAllocation.enabled": "true"}
"""What EMR's spark-defaults.conf sets before the cluster's classification (see docstring)."""
MEMORY_OVERHEAD_MIN_MB = 384  # Spark: max(384 MB, factor x memory), factor 0.10
MEMORY_OVERHEAD_FACTOR = 0.10
STARVATION_WARNING = (
    "Initial job has not accepted any resources; check your cluster UI to ensure that "
    "workers are registered and have sufficient resources"
)
STARVATION_TIMEOUT_S = 15.0  # spark.starvation.timeout

# spark-submit flags that are configuration keys (SparkSubmitArguments).
_FLAG_CONFS = {
    "--executor-memory": "spark.executor.memory",
    "--executor-cores": "spark.executor.cores",
    "--num-executors": "spark.executor.instances",
    "--driver-memory": "spark.driver.memory",
    "--deploy-mode": "spark.submit.deployMode",
}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgtp]?b?)\s*$", re.IGNORECASE)
_UNIT_MB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2, "p": 1024**3}


class YarnConfigError(ValueError):
    """A cluster or step the placement cannot read (unknown instance type, bad size)."""


def size_mb(value: str, *, default_unit: str = "m", key: str = "") -> int:
    """A Spark size (``512m``, ``2g``, ``4096``) in MiB, as ``JavaUtils.byteStringAsMb``."""
    match = _SIZE.match(str(value))
    if not match:
        raise YarnConfigError(f"{key or 'size'}={value!r} is not a size such as 512m or 2g")
    unit = (match.group(2) or default_unit).lower()
    unit = unit if unit == "b" else unit.rstrip("b")
    if unit == "b":
        return int(match.group(1)) // (1024 * 1024)
    return int(int(match.group(1)) * _UNIT_MB[unit])


@dataclass(frozen=True)
class Node:
    name: str
    instance_type: str
    role: str
    memory_mb: int


def _yarn_site(configurations: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    for item in configurations or []:
        if item.get("Classification") == "yarn-site":
            return {str(k): str(v) for k, v in (item.get("Properties") or {}).items()}
    return {}


def _node_type(instance_type: str) -> NodeType:
    try:
        return NODE_TYPES[instance_type]
    except KeyError:
        raise YarnConfigError(
            f"the emulator has no YARN figures for instance type {instance_type!r} "
            f"(emr_emulator/yarn.py NODE_TYPES: {', '.join(sorted(NODE_TYPES))})"
        ) from None


def _groups(instances: Mapping[str, Any]) -> list[tuple[str, str, int, Any]]:
    """(role, instance type, count, group Configurations) of each instance group or fleet."""
    if instances.get("InstanceGroups"):
        return [
            (
                str(g.get("InstanceRole", "")).upper(),
                str(g.get("InstanceType", "")),
                int(g.get("InstanceCount", 0)),
                g.get("Configurations"),
            )
            for g in instances["InstanceGroups"]
        ]
    if instances.get("InstanceFleets"):
        groups = []
        for fleet in instances["InstanceFleets"]:
            configs = fleet.get("InstanceTypeConfigs") or [{}]
            # The emulator "launches" the fleet's first type, as many as the target needs.
            first = configs[0]
            weight = int(first.get("WeightedCapacity", 1)) or 1
            target = int(fleet.get("TargetOnDemandCapacity", 0)) + int(
                fleet.get("TargetSpotCapacity", 0)
            )
            groups.append(
                (
                    str(fleet.get("InstanceFleetType", "")).upper(),
                    str(first.get("InstanceType", "")),
                    math.ceil(target / weight),
                    first.get("Configurations"),
                )
            )
        return groups
    count = int(instances.get("InstanceCount", 1))
    return [
        ("MASTER", str(instances.get("MasterInstanceType", "")), 1, None),
        ("CORE", str(instances.get("SlaveInstanceType", "")), count - 1, None),
    ]


@dataclass(frozen=True)
class Cluster:
    """The NodeManagers of a cluster and its scheduler's allocation limits."""

    nodes: tuple[Node, ...]
    min_allocation_mb: int
    max_allocation_mb: int


def cluster_nodes(request: Mapping[str, Any]) -> Cluster:
    """The NodeManagers (CORE and TASK nodes) of a RunJobFlow request, with ``yarn-site``
    (cluster-wide, then the group's own Configurations) applied."""
    site = _yarn_site(request.get("Configurations"))
    nodes: list[Node] = []
    largest = 0
    groups = _groups(request.get("Instances") or {})
    # Core nodes first, then task nodes: where the AM goes when it fits both.
    groups.sort(key=lambda group: group[0] != "CORE")
    for role, instance_type, count, group_configs in groups:
        node_type = _node_type(instance_type)
        if role not in ("CORE", "TASK"):
            continue  # the primary node runs the ResourceManager, no NodeManager
        group_site = {**site, **_yarn_site(group_configs)}
        memory = int(
            group_site.get("yarn.nodemanager.resource.memory-mb", node_type.nodemanager_mb)
        )
        largest = max(largest, memory)
        for _ in range(count):
            nodes.append(Node(f"{role.lower()}-{len(nodes) + 1}", instance_type, role, memory))
    minimum = int(site.get("yarn.scheduler.minimum-allocation-mb", MIN_ALLOCATION_MB))
    # The ResourceManager caps the maximum allocation at its largest NodeManager.
    maximum = min(int(site.get("yarn.scheduler.maximum-allocation-mb", largest)), largest)
    return Cluster(tuple(nodes), minimum, maximum)


@dataclass(frozen=True)
class SparkResources:
    """What one Spark application asks YARN for (MiB)."""

    deploy_mode: str
    am_memory_mb: int
    am_overhead_mb: int
    executor_memory_mb: int
    executor_overhead_mb: int
    offheap_mb: int
    pyspark_mb: int
    executor_cores: int
    executors: int | None
    """Planned executors; None: dynamic allocation without a bound (as many as fit)."""

    @property
    def am_request_mb(self) -> int:
        return self.am_memory_mb + self.am_overhead_mb

    @property
    def executor_request_mb(self) -> int:
        return (
            self.executor_memory_mb + self.executor_overhead_mb + self.offheap_mb + self.pyspark_mb
        )


def explicit_conf(submit_args: Sequence[str], spark_defaults: Mapping[str, str]) -> dict[str, str]:
    """What the cluster's ``spark-defaults`` and the step's flags set (the step wins)."""
    conf = dict(spark_defaults)
    args = list(submit_args)
    i = 0
    while i < len(args) - 1:
        arg = args[i]
        if arg == "--conf":
            key, sep, value = args[i + 1].partition("=")
            if sep:
                conf[key] = value
            i += 2
        elif arg in _FLAG_CONFS:
            conf[_FLAG_CONFS[arg]] = args[i + 1]
            i += 2
        elif arg.startswith("--"):
            i += 2 if arg not in ("--verbose", "--supervise") else 1
        else:
            break  # the application and its own arguments
    return conf


def _overhead(conf: Mapping[str, str], key: str, factor_key: str, memory_mb: int) -> int:
    if key in conf:
        return size_mb(conf[key], key=key)
    factor = float(conf.get(factor_key, MEMORY_OVERHEAD_FACTOR))
    return max(MEMORY_OVERHEAD_MIN_MB, int(factor * memory_mb))


def spark_resources(
    submit_args: Sequence[str], spark_defaults: Mapping[str, str]
) -> SparkResources:
    """The containers a ``spark-submit`` (arguments after ``spark-submit``) asks for, as
    Spark 3.5's YARN client and allocator compute them."""
    explicit = explicit_conf(submit_args, spark_defaults)
    # Spark's defaults < EMR's spark-defaults < the cluster's classification < the step.
    conf = {**SPARK_DEFAULTS, **EMR_SPARK_DEFAULTS, **explicit}
    mode = conf["spark.submit.deployMode"]
    if mode not in ("client", "cluster"):
        raise YarnConfigError(f"--deploy-mode {mode!r}: client or cluster")
    if mode == "cluster":  # the driver runs in the AM container
        am = size_mb(conf["spark.driver.memory"], key="spark.driver.memory")
        am_overhead = _overhead(
            conf, "spark.driver.memoryOverhead", "spark.driver.memoryOverheadFactor", am
        )
    else:
        am = size_mb(conf["spark.yarn.am.memory"], key="spark.yarn.am.memory")
        am_overhead = _overhead(conf, "spark.yarn.am.memoryOverhead", "", am)
    heap = size_mb(conf["spark.executor.memory"], key="spark.executor.memory")
    overhead = _overhead(
        conf, "spark.executor.memoryOverhead", "spark.executor.memoryOverheadFactor", heap
    )
    offheap = 0
    if conf.get("spark.memory.offHeap.enabled", "false").lower() == "true":
        # spark.memory.offHeap.size is in bytes unless a unit is given.
        offheap = size_mb(
            conf.get("spark.memory.offHeap.size", "0"), default_unit="b", key="offHeap.size"
        )
    pyspark = (
        size_mb(conf["spark.executor.pyspark.memory"], key="spark.executor.pyspark.memory")
        if conf.get("spark.executor.pyspark.memory")
        else 0
    )
    executors: int | None
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        # Dynamic allocation starts with max(instances, min, initial) and grows to
        # maxExecutors (unbounded by default): the plan is the explicit instances, else the
        # bound, else as many as fit.
        bound = explicit.get("spark.executor.instances") or explicit.get(
            "spark.dynamicAllocation.maxExecutors"
        )
        executors = int(bound) if bound else None
    else:
        executors = int(conf["spark.executor.instances"])
    return SparkResources(
        deploy_mode=mode,
        am_memory_mb=am,
        am_overhead_mb=am_overhead,
        executor_memory_mb=heap,
        executor_overhead_mb=overhead,
        offheap_mb=offheap,
        pyspark_mb=pyspark,
        executor_cores=int(conf["spark.executor.cores"]),
        executors=executors,
    )
