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
its spark-defaults (EMR Release Guide, "Configure Spark", table "Spark defaults set by Amazon
EMR": true since emr-4.4.0). That table also has EMR set ``spark.executor.memory`` and
``spark.executor.cores`` "based on the core and task instance types"; the emulator does not
keep those figures, so an unset executor size is Spark's (1 GiB, 1 core): the project's
steps always set them. Under dynamic allocation with no ``spark.executor.instances`` or
``maxExecutors`` the plan is "as many as fit".

Not emulated: vcores; node labels (from emr-5.19.0 EMR can keep the AM on CORE nodes with
them: release notes 5.19.0, Management Guide "Instance configuration guidelines"; here the
AM goes to the first core or task node with room, core nodes listed first); queues and
preemption; other applications; and the NodeManager's real memory enforcement (a container
that outgrows its allocation is not killed here).

The emulator keeps its own table of instance types (it must not import the project's, so it
checks the project instead of agreeing with it). ``python -m emr_emulator.yarn REQUEST.json
STEP.json`` prints the placement of a RunJobFlow request and one step.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emr_emulator.yarn_conf import (
    NODE_TYPES,
    STARVATION_TIMEOUT_S,
    STARVATION_WARNING,
    Cluster,
    SparkResources,
    YarnConfigError,
    cluster_nodes,
    spark_resources,
)

__all__ = ["NODE_TYPES", "Placement", "YarnConfigError", "apply_placement", "explain", "place"]


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
    # The AM's container comes first: it is the AM that then asks the ResourceManager for
    # the executors (Hadoop, "Apache Hadoop YARN" architecture; Spark, "Running on YARN").
    am = placement.am_allocation_mb
    placement.am_node = next((name for name, mb in free.items() if mb >= am), None)
    if placement.am_node is None:
        # No NodeManager has room for the AM: the application stays ACCEPTED
        # (YarnApplicationState) and nothing starts.
        return placement
    free[placement.am_node] -= am
    placement.per_node[placement.am_node].append(f"AM {am}")
    # Executors by memory alone (DefaultResourceCalculator, see the module docstring): each
    # normalised container must fit a node's free NodeManager memory.
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
    prepared.rewrites += [f"YARN: {line}" for line in prepared.stderr_head if "emulator" in line]
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
