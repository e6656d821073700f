"""The emulator's YARN placement of a run's real cluster request and Spark step.

Builds the plan with the project's own builders (``include.emr.plan.build_run_plan``, the
RunJobFlow request and the step the DAG sends) and prints what the offline EMR's YARN
(``emr_emulator.yarn``) grants: AM placement, executors granted / planned.

    python -m benchmarks.yarn_placement                       # the default run
    python -m benchmarks.yarn_placement m5.xlarge 1 keras     # instance type, core nodes, runtime
"""

from __future__ import annotations

import sys
from typing import Any

from emr_emulator import yarn
from include.config import PipelineConfig
from include.emr.plan import build_run_plan
from include.params.cluster import emr_settings_from_params


def run_plan(instance_type: str, core_nodes: int, runtime: str) -> dict[str, Any]:
    """The run plan the DAG would build for these Params (every other Param at its default)."""
    settings = emr_settings_from_params(
        {"instance_type": instance_type, "core_nodes": core_nodes, "runtime": runtime}
    )
    return build_run_plan(settings, PipelineConfig(), dag_id="fruits_emr_pipeline", run_id="r")


def main(argv: list[str]) -> int:
    instance_type, core_nodes, runtime = (argv + ["m5.xlarge", "2", "litert"][len(argv) :])[:3]
    plan = run_plan(instance_type, int(core_nodes), runtime)
    print(f"{instance_type} x {core_nodes} core node(s), runtime {runtime}:")
    print(yarn.explain(plan["job_flow_overrides"], plan["steps"][0]["HadoopJarStep"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
