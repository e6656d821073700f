"""What the cluster's executor sizing and cost estimate know of each EC2 instance type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    """What the executor sizing needs to know of a node (include/capacity/cluster_sizing.py)."""

    vcpus: int
    memory_gib: int
    yarn_memory_mb: int
    """EMR's default ``yarn.nodemanager.resource.memory-mb`` (= maximum-allocation-mb)."""
    arch: str  # "x86_64" | "aarch64"


# vCPUs and memory: EC2 User Guide (instance type tables). YARN memory: EMR Release Guide,
# "Task configuration" (emr-hadoop-task-config), default values for the latest release,
# without HBase; yarn.scheduler.maximum-allocation-mb equals it for every type here.
INSTANCE_TYPES: dict[str, InstanceType] = {
    "m5.xlarge": InstanceType(4, 16, 12288, "x86_64"),
    "m5.2xlarge": InstanceType(8, 32, 24576, "x86_64"),
    "m5.4xlarge": InstanceType(16, 64, 57344, "x86_64"),
    "m6i.xlarge": InstanceType(4, 16, 11712, "x86_64"),
    "m6i.2xlarge": InstanceType(8, 32, 23424, "x86_64"),
    "c5.2xlarge": InstanceType(8, 16, 12288, "x86_64"),
    "c6i.2xlarge": InstanceType(8, 16, 11712, "x86_64"),
    "r5.xlarge": InstanceType(4, 32, 24576, "x86_64"),
    "m6g.xlarge": InstanceType(4, 16, 11712, "aarch64"),
    "m6g.2xlarge": InstanceType(8, 32, 23424, "aarch64"),
    "m7g.xlarge": InstanceType(4, 16, 11712, "aarch64"),
    "m7g.2xlarge": InstanceType(8, 32, 23424, "aarch64"),
}

INSTANCE_VCPUS: dict[str, int] = {name: node.vcpus for name, node in INSTANCE_TYPES.items()}
"""vCPUs per instance type; YARN offers all of them to executors
(include/capacity/cluster_sizing.py)."""
