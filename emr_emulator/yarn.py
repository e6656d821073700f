"""YARN's container placement for an emulated cluster step: what EMR's ResourceManager grants.

The step runs on local Spark, but a real cluster first has to fit the step's containers into
its core and task nodes' NodeManager memory. :func:`place_step` does that from the RunJobFlow
request (instance groups or fleets, ``yarn-site``, ``spark-defaults``) and the step's own
``spark-submit`` arguments, as YARN's CapacityScheduler with EMR's
``DefaultResourceCalculator`` does:

* the ApplicationMaster is placed first (client mode: ``spark.yarn.am.memory`` + its
  overhead; cluster mode: the driver runs in it, ``spark.driver.memory`` + its overhead);
* then every executor container: heap + overhead (+ off-heap when enabled, + PySpark
  memory when set), each rounded up to a multiple of ``yarn.scheduler.minimum-allocation-mb``;
* on the nodes of the CORE and TASK roles only (the primary node runs no NodeManager), by
  memory alone: the DefaultResourceCalculator ignores vcores (Hadoop docs, "Hadoop: Capacity
  Scheduler", ``yarn.scheduler.capacity.resource-calculator``: "The default i.e.
  DefaultResourceCalculator only uses Memory"; EMR keeps that default). With equal
  containers the count that fits does not depend on the order nodes heartbeat in, so the
  first node with room takes each container.

A container above the maximum allocation is refused as Spark's YARN client refuses it at
submission (``Client.verifyClusterResources``, Spark 3.5; the message is Spark's own); when
no executor fits the step hangs as on EMR (the driver logs Spark's starvation warning every
``spark.starvation.timeout``, 15 s) until it is cancelled or its cluster ends.

Defaults for what neither the step nor the cluster sets are Spark 3.5's ("Running on
YARN", "Configuration"), except ``spark.dynamicAllocation.enabled``, which EMR turns on in
its spark-defaults (EMR Release Guide, "Spark" > "Using dynamic allocation"). EMR also sets
``spark.executor.memory``/``cores`` from the instance type when ``maximizeResourceAllocation``
or its defaults apply; this table does not keep those figures, so an unset executor size is
Spark's (1 GiB, 1 core). Under dynamic allocation with no ``spark.executor.instances`` or
``maxExecutors`` the plan is "as many as fit".

Not emulated: vcores, node labels (EMR 5.19-6.x put the AM on CORE nodes only), queues and
preemption, other applications, and the NodeManager's real memory enforcement (a container
that outgrows its allocation is not killed here).

The emulator keeps its own table of instance types (it must not import the project's, so it
checks the project instead of agreeing with it). ``python -m emr_emulator.yarn REQUEST.json
STEP.json`` prints the placement of a RunJobFlow request and one step.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NodeType:
    vcpus: int
    memory_gib: int
    nodemanager_mb: int
    """``yarn.nodemanager.resource.memory-mb`` (EMR's default, = maximum-allocation-mb)."""


# vCPUs and memory: EC2 User Guide, instance type specifications. NodeManager memory: EMR
# Release Guide, "Task configuration" (emr-hadoop-task-config), defaults without HBase;
# EMR sets yarn.scheduler.maximum-allocation-mb to the same figure for these types.
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
    for role, instance_type, count, group_configs in _groups(request.get("Instances") or {}):
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


def allocation_mb(request_mb: int, minimum_mb: int) -> int:
    """YARN's normalisation: at least the minimum, rounded up to a multiple of it."""
    return max(minimum_mb, math.ceil(request_mb / minimum_mb) * minimum_mb)


@dataclass
class Placement:
    """Where YARN put the AM and the executors, or why it refused the application."""

    cluster: Cluster
    resources: SparkResources
    am_node: str | None = None
    executors_granted: int = 0
    per_node: dict[str, list[str]] = field(default_factory=dict)
    refused: str | None = None

    @property
    def am_allocation_mb(self) -> int:
        return allocation_mb(self.resources.am_request_mb, self.cluster.min_allocation_mb)

    @property
    def executor_allocation_mb(self) -> int:
        return allocation_mb(self.resources.executor_request_mb, self.cluster.min_allocation_mb)

    @property
    def hangs(self) -> bool:
        """No executor (or no AM) could start: the job waits for resources forever."""
        return self.refused is None and (self.am_node is None or self.executors_granted == 0)

    @property
    def granted_slots(self) -> int:
        return self.executors_granted * self.resources.executor_cores

    def local_cores(self, local_cores: int) -> int:
        """Task slots of the local Spark that plays this cluster.

        ``local_cores`` (the emulator's setting) stands for the whole planned cluster: a
        partial grant gets its share of it (at least 1, never more than the granted slots),
        so a step on half its executors runs about half as fast here too. Under unbounded
        dynamic allocation the plan is what fits, and the step gets ``local_cores``.
        """
        planned = self.resources.executors
        if not planned or self.executors_granted >= planned:
            share = local_cores
        else:
            share = local_cores * self.executors_granted // planned
        return max(1, min(self.granted_slots, share))

    def log_lines(self) -> list[str]:
        """What the driver's log says (Spark's own lines where it has one) + a summary."""
        r, c = self.resources, self.cluster
        if self.refused:
            return [self.refused]
        planned = "as many as fit" if r.executors is None else str(r.executors)
        lines = [
            "INFO Client: Will allocate AM container, with "
            f"{r.am_request_mb} MB memory including {r.am_overhead_mb} MB overhead",
            f"INFO YarnAllocator: Will request {planned} executor container(s) for  "
            f"ResourceProfile Id: 0, each with {r.executor_cores} core(s) and "
            f"{r.executor_request_mb} MB memory.",
        ]
        nodes = ", ".join(
            f"{n.name} ({n.instance_type}, {n.memory_mb} MB: "
            f"{' + '.join(self.per_node.get(n.name, [])) or 'empty'})"
            for n in c.nodes
        )
        lines.append(
            f"emr-emulator YARN: AM ({r.deploy_mode} mode, {self.am_allocation_mb} MB) on "
            f"{self.am_node or 'no node: none has room'}; executors granted "
            f"{self.executors_granted} of {planned} ({self.executor_allocation_mb} MB each, "
            f"min allocation {c.min_allocation_mb} MB); nodes: {nodes or 'none'}"
        )
        if r.executors is not None and self.executors_granted < r.executors:
            lines.append(
                f"WARN emr-emulator YARN: {r.executors - self.executors_granted} executor "
                "container(s) refused: no NodeManager has room for them"
            )
        return lines


def place(cluster: Cluster, resources: SparkResources) -> Placement:
    """Place the AM, then the executors, first node with room first (see module docstring)."""
    placement = Placement(cluster, resources)
    r, c = resources, cluster
    # Spark's Client.verifyClusterResources (Spark 3.5): refused before anything is placed.
    if r.executor_request_mb > c.max_allocation_mb:
        placement.refused = (
            "java.lang.IllegalArgumentException: Required executor memory "
            f"({r.executor_memory_mb} MB), offHeap memory ({r.offheap_mb}) MB, overhead "
            f"({r.executor_overhead_mb} MB), and PySpark memory ({r.pyspark_mb} MB) is above "
            f"the max threshold ({c.max_allocation_mb} MB) of this cluster! Please check the "
            "values of 'yarn.scheduler.maximum-allocation-mb' and/or "
            "'yarn.nodemanager.resource.memory-mb'."
        )
        return placement
    if r.am_request_mb > c.max_allocation_mb:
        placement.refused = (
            f"java.lang.IllegalArgumentException: Required AM memory ({r.am_memory_mb}"
            f"+{r.am_overhead_mb} MB) is above the max threshold ({c.max_allocation_mb} MB) of "
            "this cluster! Please check the values of 'yarn.scheduler.maximum-allocation-mb' "
            "and/or 'yarn.nodemanager.resource.memory-mb'."
        )
        return placement
    free = {n.name: n.memory_mb for n in c.nodes}
    placement.per_node = {n.name: [] for n in c.nodes}
    am = placement.am_allocation_mb
    placement.am_node = next((name for name, mb in free.items() if mb >= am), None)
    if placement.am_node is None:
        return placement  # the application stays ACCEPTED: nothing starts
    free[placement.am_node] -= am
    placement.per_node[placement.am_node].append(f"AM {am}")
    each = placement.executor_allocation_mb
    wanted = r.executors if r.executors is not None else sys.maxsize
    for name in free:
        while placement.executors_granted < wanted and free[name] >= each:
            free[name] -= each
            placement.executors_granted += 1
            placement.per_node[name].append(f"executor {each}")
    return placement


def place_step(request: Mapping[str, Any], hadoop_jar_step: Mapping[str, Any]) -> Placement | None:
    """The placement of a ``command-runner.jar spark-submit --master yarn`` step on the
    cluster of ``request`` (RunJobFlow); None for any other step (nothing for YARN)."""
    args = [str(a) for a in hadoop_jar_step.get("Args", [])]
    if hadoop_jar_step.get("Jar") != "command-runner.jar" or args[:1] != ["spark-submit"]:
        return None
    submit = args[1:]
    master = next((submit[i + 1] for i, a in enumerate(submit[:-1]) if a == "--master"), None)
    defaults: dict[str, str] = {}
    for item in request.get("Configurations") or []:
        if item.get("Classification") == "spark-defaults":
            defaults = {str(k): str(v) for k, v in (item.get("Properties") or {}).items()}
    if (master or defaults.get("spark.master", "yarn")) != "yarn":
        return None
    return place(cluster_nodes(request), spark_resources(submit, defaults))


def stand_in_command(placement: Placement, python: str) -> list[str] | None:
    """The command that plays a step YARN cannot run: the refusal (Spark's exception in a
    PySpark driver's traceback, exit 1) or the hang (Spark's starvation warning every 15 s,
    forever). None when the step can run."""
    if placement.refused:
        text = (
            "Traceback (most recent call last):\n"
            "py4j.protocol.Py4JJavaError: An error occurred while calling "
            "None.org.apache.spark.api.java.JavaSparkContext.\n"
            f": {placement.refused}\n"
        )
        script = f"import sys\nsys.stderr.write({text!r})\nsys.exit(1)\n"
        return [python, "-c", script]
    if placement.hangs:
        line = f"WARN YarnScheduler: {STARVATION_WARNING}\n"
        script = (
            "import sys, time\n"
            "while True:\n"
            f"    time.sleep({STARVATION_TIMEOUT_S})\n"
            f"    sys.stderr.write({line!r}); sys.stderr.flush()\n"
        )
        return [python, "-c", script]
    return None


def apply_placement(prepared: Any, placement: Placement, *, python: str) -> None:
    """Make a prepared step (:class:`emr_emulator.steps.PreparedStep`) play ``placement``:
    its stderr starts with the driver's YARN lines, the controller log gets the summary, and
    a step YARN cannot run is replaced by its :func:`stand_in_command`."""
    prepared.stderr_head = placement.log_lines()
    prepared.rewrites.append("YARN: " + prepared.stderr_head[-1])
    stand_in = stand_in_command(placement, python)
    if stand_in is not None:
        outcome = "refused by YARN" if placement.refused else "no executor fits: the job waits"
        prepared.rewrites.append(f"{outcome}: spark-submit replaced by its stand-in")
        prepared.argv = stand_in


def explain(request: Mapping[str, Any], hadoop_jar_step: Mapping[str, Any]) -> str:
    placement = place_step(request, hadoop_jar_step)
    if placement is None:
        return "not a spark-submit --master yarn step: YARN places nothing"
    outcome = (
        "REFUSED"
        if placement.refused
        else "HANGS (no executor can start)"
        if placement.hangs
        else "runs"
    )
    return "\n".join([*placement.log_lines(), f"outcome: {outcome}"])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m emr_emulator.yarn REQUEST.json STEP.json", file=sys.stderr)
        print("  REQUEST: a RunJobFlow request; STEP: one AddJobFlowSteps step", file=sys.stderr)
        return 2
    request, step = (json.loads(Path(a).read_text()) for a in args)
    print(explain(request, step.get("HadoopJarStep", step)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
