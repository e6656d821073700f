"""Parse time of each DAG file next to an empty DAG's, measured in one run.

Each file is parsed in a fresh Python process that has already imported Airflow and the
DagBag (as the dag-processor has), so the figure is what the file itself costs: its
imports and its top-level code. Median of ``--repeat`` runs. Target: <= 0.2 s per file.

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
    files = [empty, *sorted((REPO_ROOT / "dags").glob("*.py"))]

    header = f"{'file':<32} {'median s':>9} {'min s':>7} {'x empty':>8} {'dags':>5}"
    print(f"{header}  target <= {TARGET_S}")
    baseline = None
    worst = 0.0
    for path in files:
        runs = [parse_once(path, env) for _ in range(args.repeat)]
        times = [t for t, _ in runs]
        median = statistics.median(times)
        baseline = baseline or median
        worst = max(worst, median) if path != empty else worst
        name = "(empty TaskFlow DAG)" if path == empty else path.name
        ratio = median / baseline
        print(f"{name:<32} {median:>9.3f} {min(times):>7.3f} {ratio:>7.1f}x {runs[0][1]:>5}")
    verdict = "OK" if worst <= TARGET_S else "OVER TARGET"
    print(f"slowest DAG file: {worst:.3f} s ({verdict})")
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
