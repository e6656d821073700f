"""Parse time of each DAG file next to an empty DAG's, measured in one run.

Each file is parsed in a fresh Python process that has already imported Airflow and the
DagBag (as the dag-processor has), so the figure is what the file itself costs: its
imports and its top-level code. Median of ``--repeat`` runs. Target: <= 0.2 s per file.
Two baselines: an empty TaskFlow DAG, and the same with the provider's EMR operators
imported (the floor of any DAG that uses them: the provider imports boto3 at module level).

    python benchmarks/parse_times.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.2

EMPTY_DAG = textwrap.dedent(
    '''
    """An empty TaskFlow DAG: the baseline."""
    import pendulum
    from airflow.sdk import dag, task


    @dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
    def empty_dag():
        @task
        def noop() -> None:
            return None

        noop()


    empty_dag()
    '''
)

# The floor of any DAG that uses the EMR operators: the provider imports boto3 at module
# level (airflow.providers.amazon.aws.hooks.base_aws), whatever the DAG file does.
EMR_PROVIDER_DAG = EMPTY_DAG.replace(
    "from airflow.sdk import dag, task",
    "from airflow.sdk import dag, task\n"
    "from airflow.providers.amazon.aws.operators.emr import EmrCreateJobFlowOperator  # noqa",
).replace('"""An empty TaskFlow DAG: the baseline."""', '"""Empty DAG + EMR operators."""')

PROBE = textwrap.dedent(
    """
    import sys, time
    from airflow.dag_processing.dagbag import DagBag
    start = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - start
    if bag.import_errors:
        print("ERROR", list(bag.import_errors.values())[0].splitlines()[-1], file=sys.stderr)
        sys.exit(1)
    print(f"{elapsed:.6f} {len(bag.dags)}")
    """
)


def parse_once(path: Path, env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{path}: failed to parse:\n{out.stderr[-2000:]}")
    seconds, n_dags = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(n_dags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="parse-bench-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    empty = Path(home) / "empty_dag.py"
    empty.write_text(EMPTY_DAG)
    provider_floor = Path(home) / "empty_dag_with_emr_operators.py"
    provider_floor.write_text(EMR_PROVIDER_DAG)
    labels = {empty: "(empty TaskFlow DAG)", provider_floor: "(empty DAG + EMR operators)"}
    files = [empty, provider_floor, *sorted((REPO_ROOT / "dags").glob("*.py"))]

    header = f"{'file':<32} {'median s':>9} {'min s':>7} {'x empty':>8} {'dags':>5}"
    print(f"{header}  target <= {TARGET_S}")
    baseline = None
    worst = 0.0
    for path in files:
        runs = [parse_once(path, env) for _ in range(args.repeat)]
        times = [t for t, _ in runs]
        median = statistics.median(times)
        baseline = baseline or median
        worst = worst if path in labels else max(worst, median)
        name = labels.get(path, path.name)
        ratio = median / baseline
        print(f"{name:<32} {median:>9.3f} {min(times):>7.3f} {ratio:>7.1f}x {runs[0][1]:>5}")
    verdict = "OK" if worst <= TARGET_S else "OVER TARGET"
    print(f"slowest DAG file: {worst:.3f} s ({verdict})")
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
