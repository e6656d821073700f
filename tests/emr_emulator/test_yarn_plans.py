"""Every run the Params allow gets every executor it plans, by the emulator's YARN.

The cluster request and the Spark step are the ones the DAG would send
(``include.emr.plan.build_run_plan`` from validated Params); the placement is the
emulator's own (``emr_emulator.yarn``, with its own instance table), not the sizing's
arithmetic, so the sizing is checked rather than agreed with.
"""

from __future__ import annotations

import pytest

from emr_emulator import yarn
from include.capacity.instance_types import INSTANCE_TYPES
from include.capacity.prices import ALLOWED_INSTANCE_TYPES
from include.capacity.runtimes import RUNTIME_ARCHES
from include.capacity.worker_memory import SizingError
from include.config import PipelineConfig
from include.emr.plan import build_run_plan
from include.params.cluster import emr_settings_from_params


def _sizes(instance_type: str, runtime: str) -> bool:
    """False where the Params check refuses the run at the default batch (no plan to place;
    those refusals are tested in tests/include/capacity/test_cluster_sizing.py)."""
    try:
        emr_settings_from_params({"instance_type": instance_type, "runtime": runtime})
    except SizingError:
        return False
    return True


CASES = [
    (instance_type, runtime)
    for instance_type in ALLOWED_INSTANCE_TYPES
    for runtime in ("litert", "onnx", "keras")
    if INSTANCE_TYPES[instance_type].arch in RUNTIME_ARCHES[runtime]
    and _sizes(instance_type, runtime)
]


def placement_of(instance_type: str, core_nodes: int, runtime: str) -> tuple[dict, yarn.Placement]:
    settings = emr_settings_from_params(
        {"instance_type": instance_type, "core_nodes": core_nodes, "runtime": runtime}
    )
    plan = build_run_plan(settings, PipelineConfig(), dag_id="fruits_emr_pipeline", run_id="r")
    (step,) = plan["steps"]
    placement = yarn.place_step(plan["job_flow_overrides"], step["HadoopJarStep"])
    assert placement is not None, "the feature step is a spark-submit on YARN"
    return plan, placement


def test_the_cases_cover_every_allowed_type():
    assert {instance_type for instance_type, _ in CASES} == set(ALLOWED_INSTANCE_TYPES)
    # litert on all 12 types, onnx on all but the two 16 GiB compute types, keras on the 6
    # x86_64 types but those two.
    assert len(CASES) == 12 + 10 + 6


@pytest.mark.parametrize(("instance_type", "runtime"), CASES)
@pytest.mark.parametrize("core_nodes", [1, 2, 3])
def test_every_planned_executor_is_granted(instance_type, runtime, core_nodes):
    plan, placement = placement_of(instance_type, core_nodes, runtime)
    executors = plan["executors"]
    assert placement.refused is None
    assert placement.am_node is not None
    assert placement.resources.executors == executors["executors"]
    assert placement.executors_granted == executors["executors"], placement.log_lines()
    assert placement.granted_slots == executors["task_slots"]
    assert placement.resources.executor_cores == executors["executor_cores"]
    # YARN grants the container the sizing planned, not a rounded-up larger one.
    assert placement.executor_allocation_mb == executors["container_mb"]


def test_the_default_run_places_the_am_beside_an_executor():
    plan, placement = placement_of("m5.xlarge", 2, "litert")
    assert placement.per_node == {
        "core-1": ["AM 896", f"executor {plan['executors']['container_mb']}"],
        "core-2": [f"executor {plan['executors']['container_mb']}"],
    }
    assert placement.local_cores(2) == 2
