"""``make run``: the whole pipeline on this machine, through Airflow, in one command.

1. The dataset: ``--data DIR`` (a real Fruits-360 folder with ``Training/<Label>/...``), or
   a small deterministic sample made by :mod:`include.datasets.sample` in
   ``data/fruits-360-sample`` (made once; reused while complete).
2. The MobileNetV2 weights, decided here and not inside the job: ``--weights`` if given;
   else ImageNet when Keras' cache already holds the file or it can be downloaded; else a
   loud WARNING and random weights (``none``): the pipeline still runs end to end, but the
   features are not meaningful, and the console and the report say so.
3. Airflow: the metadata DB in ``$AIRFLOW_HOME`` (``airflow db migrate``, idempotent), then
   one run of the ``fruits_local_pipeline`` DAG with ``dag.test()`` (the scheduler's
   dependency loop, in this process), with the choices above as the run's conf (Params).
4. Prints where the features, the PCA, the metrics and the report are — or, when the
   run was skipped because nothing changed since the last successful run, which run's
   results and report to use (``--force`` reruns anyway).

    python -m include.local.run [--data DIR] [--weights imagenet|none|FILE] [--offline]
                                [--mode mini|full] [--max-images N] [--pca-k K] [--force]

Which images: every image by default (``make run`` featurises what the user points it at,
never a silent sample); ``--mode mini`` (or ``--max-images N``) asks for the seeded sample.
The console says which before the run and in its closing summary. (The DAGs' trigger form
keeps ``mini`` as its default: a button press on EMR should be cheap until asked otherwise.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.config import REPO_ROOT, load_config
from include.datasets.local import DatasetError, validate_dataset
from include.datasets.sample import DEFAULT_CLASSES, generate_sample_dataset
from include.local.console import RunConsole, run_log_path, task_state_lookup
from include.params.job_args import MINI_MAX_IMAGES
from include.params.run_paths import run_results_dir
from include.reruns.history import read_local_record
from include.results.html import plural
from include.results.report import selection_text
from include.staging.weights import (
    WeightsDecision,
    WeightsUnavailableError,
    decide_weights,
    download_imagenet_weights,
)
from include.staging.weights import (
    offline as weights_offline,
)

DAG_ID = "fruits_local_pipeline"
SAMPLE_PER_LABEL = 12
SAMPLE_SEED = 42
SAMPLE_MARKER = ".sample-complete.json"

SPARK_LOCAL_CONN = '{"conn_type": "spark", "host": "local[*]"}'


class LocalRunError(RuntimeError):
    """The run cannot start or did not finish; the message says why."""


@dataclass(frozen=True)
class Inputs:
    """The dataset folder (checked), how many images it holds, and the weights decision."""

    data_dir: Path
    images: int
    decision: WeightsDecision


def ensure_sample_dataset(
    dest: Path, *, per_label: int = SAMPLE_PER_LABEL, seed: int = SAMPLE_SEED
) -> Path:
    """Make the sample dataset in ``dest`` unless a complete one with the same settings is there."""

    marker = dest / SAMPLE_MARKER
    expected = {
        "per_label": per_label,
        "seed": seed,
        "images": per_label * len(DEFAULT_CLASSES) + (per_label // 3) * len(DEFAULT_CLASSES),
    }
    if marker.is_file():
        try:
            if (
                json.loads(marker.read_text()) == expected
                and validate_dataset(dest).images == expected["images"]
            ):
                print(f"sample dataset: {dest} (already there)")
                return dest
        except (json.JSONDecodeError, DatasetError):
            pass  # damaged or partial: make it again
    marker.unlink(missing_ok=True)  # the marker goes last, so an interrupted run regenerates
    counts = generate_sample_dataset(dest, per_label=per_label, seed=seed)
    marker.write_text(json.dumps(expected))
    print(f"sample dataset: wrote {plural(sum(counts.values()), 'image')} to {dest}")
    return dest


def airflow_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a local Airflow: the repo's dags/, its own home, Spark on local[*]."""
    env = dict(os.environ if base is None else base)
    env.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO_ROOT / "plugins"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW_CONN_SPARK_LOCAL", SPARK_LOCAL_CONN)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def migrate_db(env: dict[str, str]) -> None:
    """``airflow db migrate``: creates the metadata DB or upgrades it; a no-op when current."""
    airflow = Path(sys.executable).with_name("airflow")
    command = [str(airflow) if airflow.exists() else "airflow", "db", "migrate"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalRunError(
            f"airflow db migrate failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )


def run_dag(conf: dict[str, Any], *, dag_id: str = DAG_ID) -> tuple[str, str, dict[str, str]]:
    """One run of a DAG (the local one by default) through Airflow's ``dag.test()``;
    returns (run id, run state, state per task)."""
    from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415 (lazy: loads airflow and sqlalchemy)

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if dag_id not in bag.dags:
        errors = "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items())
        raise LocalRunError(f"DAG {dag_id} not found in {bag.dag_folder}\n{errors}")
    dag_run = bag.dags[dag_id].test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return dag_run.run_id, str(dag_run.state), states


def features_line(run_dir: Path) -> str:
    """The summary's features line: the folder when this machine holds it; an EMR run keeps
    its features beside its results in S3 unless the run asked for them (Param
    ``download_features``)."""
    features = run_dir / "features"
    if features.is_dir():
        return f"  features     {features}  (parquet: path, split, label, features[1280])"
    return (
        "  features     not downloaded: kept beside the results in S3 "
        "(Param download_features to copy them here)"
    )


def separability_line(section: dict[str, Any] | None) -> str:
    """The summary's line on whether k keeps the classes apart (``metrics.json``'s
    ``separability``: Test accuracy of a logistic regression fitted on Training)."""
    if not section:
        return "  classes      not measured (metrics.json without separability)"
    if "absent" in section:
        return f"  classes      not measured: {section['absent']}"
    return (
        f"  classes      Test accuracy {section['accuracy_at_k']:.3f} at k = {section['k']}, "
        f"{section['accuracy_full']:.3f} on all {section['feature_dim']} features "
        f"(chance {section['chance']:.3f})"
    )


def summarise(run_dir: Path, decision: WeightsDecision) -> str:
    """The closing message: where each result is, and which weights made the features."""
    metrics: dict[str, Any] = {}
    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
    weights = metrics.get("weights") or {}
    counts = metrics.get("counts") or {}
    pca = metrics.get("pca") or {}

    selection = selection_text(metrics) if counts else "?"
    if metrics.get("mode") == "mini" and counts.get("total_files", 0) < counts.get(
        "dataset_images", 0
    ):
        selection += "; MODE=full for every image"
    lines = [
        "",
        "=" * 78,
        f"Run finished: {run_dir}",
        f"  mode         {selection}",
        f"  images       {counts.get('valid_images', '?')} valid, "
        f"{counts.get('bad_files', '?')} skipped",
        f"  featurised   {counts.get('featurized', '?')} now, {counts.get('reused', 0)} reused "
        f"from {(metrics.get('feature_cache') or {}).get('uri') or 'no feature cache'} "
        f"(job {(metrics.get('timings_s') or {}).get('total', '?')} s)",
        features_line(run_dir),
        f"  PCA          {run_dir / 'pca'}  (k = {pca.get('k', '?')}, "
        f"variance kept {pca.get('variance_at_k', float('nan')):.3f})",
        separability_line(metrics.get("separability")),
        f"  metrics      {run_dir / 'metrics.json'}",
        f"  report       {run_dir / 'report' / 'report.html'}",
        f"  weights      {weights.get('source', decision.value)} ({decision.reason})",
    ]
    if not weights.get("meaningful", decision.meaningful):
        lines += [
            "",
            "WARNING: these features come from RANDOM weights: they are NOT meaningful (nor is",
            "         the classes' accuracy: it measures the random network, not ImageNet's).",
            "         Rerun with ImageNet weights (internet access, or --weights FILE).",
        ]
    lines.append("=" * 78)
    return "\n".join(lines)


def choose_inputs(
    data: Path | None, weights: str | None, *, offline: bool, sample_dir: Path
) -> Inputs:
    """The dataset (``data``, checked, or the sample made in ``sample_dir``) and the weights.

    Raises DatasetError / LocalRunError with the reason; ``make run`` and ``make run-emr``
    decide the same way."""

    if data is not None:
        data_dir = data.expanduser().resolve()
        summary = validate_dataset(data_dir)
        print(
            f"dataset: {data_dir} ({plural(summary.images, 'image')}, "
            f"{plural(len(summary.labels), 'label')})"
        )
    else:
        data_dir = ensure_sample_dataset(sample_dir)
        summary = validate_dataset(data_dir)
    try:
        decision = decide_weights(weights, download=None if offline else download_imagenet_weights)
    except WeightsUnavailableError as exc:
        raise LocalRunError(str(exc)) from exc
    return Inputs(data_dir, summary.images, decision)


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mode`` / ``--max-images``: which images a local run featurises (``make run``
    and ``make run-emr`` take the same)."""
    parser.add_argument(
        "--mode",
        choices=("mini", "full"),
        default=None,
        help="full (default): every image; mini: a seeded sample (also implied by --max-images)",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=None,
        help=f"mini mode: at most N images in total (default {MINI_MAX_IMAGES})",
    )


def selection_conf(args: argparse.Namespace, dataset_images: int) -> dict[str, Any]:
    """The run's ``mode`` / ``max_images`` Params, printed as a line saying what is read.

    Full unless mini is asked for (``--mode mini`` or ``--max-images``): a user's own
    dataset is never sampled silently. Raises LocalRunError on a contradiction."""
    if args.max_images is not None and args.max_images < 1:
        raise LocalRunError(f"--max-images must be at least 1, got {args.max_images}")
    mode = args.mode or ("mini" if args.max_images is not None else "full")
    if mode == "full":
        if args.max_images is not None:
            raise LocalRunError(
                "--max-images (MAX_IMAGES=) samples, which only mini mode does: "
                "drop it for every image, or pass --mode mini (MODE=mini)"
            )
        print(f"mode: full: every image ({dataset_images:,}); MODE=mini for a seeded sample")
        return {"mode": "full"}
    cap = args.max_images or MINI_MAX_IMAGES
    sampled = min(cap, dataset_images)
    print(
        f"mode: mini: a seeded sample of {sampled:,} of the {dataset_images:,} images "
        f"(cap {cap}); MODE=full for every image"
        if sampled < dataset_images
        else f"mode: mini: every image ({dataset_images:,}, under the sample's cap of {cap})"
    )
    return {"mode": "mini", "max_images": cap}


def inputs_from_args(args: argparse.Namespace, sample_dir: Path) -> Inputs | None:
    """:func:`choose_inputs` for a command line with ``--data``/``--weights``/``--offline``;
    None (the reason printed to stderr) when the dataset or the weights are unusable."""

    try:
        return choose_inputs(args.data, args.weights, offline=args.offline, sample_dir=sample_dir)
    except (DatasetError, LocalRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def summarise_skipped(dag_dir: Path, run_id: str) -> str:
    """The closing message of a run skipped as unchanged: which run's results to use
    (``dag_dir``: the DAG's results folder, which holds its last-success record)."""

    record = read_local_record(dag_dir) or {}
    return "\n".join(
        [
            "",
            "=" * 78,
            f"Run {run_id}: unchanged since run {record.get('run_id', '?')} "
            "(same dataset, weights, settings and job package): nothing was recomputed.",
            f"  results      {record.get('results_uri', '?')}",
            f"  report       {record.get('report_uri') or 'none'}",
            "  (pass --force to run anyway)",
            "=" * 78,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, help="a Fruits-360 folder (with Training/...); default: the sample"
    )
    parser.add_argument(
        "--weights",
        help="imagenet | none | a .h5/.keras weights file (default: imagenet if available)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=weights_offline(),
        help="never try to download the ImageNet weights (also FRUITS_OFFLINE=1)",
    )
    add_selection_arguments(parser)
    parser.add_argument("--pca-k", type=int, default=None, help="fixed number of PCA components")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even when the dataset, weights, settings and job package are unchanged "
        "since the last successful run (which is reused otherwise)",
    )
    args = parser.parse_args(argv)

    env = airflow_env()
    os.environ.update(env)  # before airflow is imported: it reads its configuration once

    config = load_config()
    inputs = inputs_from_args(args, config.data_dir)
    if inputs is None:
        return 2
    data_dir, decision = inputs.data_dir, inputs.decision
    if not decision.meaningful:
        print(f"\nWARNING: {decision.reason}\n", file=sys.stderr)
    else:
        print(f"weights: {decision.reason}")
    try:
        selection = selection_conf(args, inputs.images)
    except LocalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    conf: dict[str, Any] = {"dataset_dir": str(data_dir), "weights": decision.value, **selection}
    if args.pca_k:
        conf["pca_k"] = args.pca_k
        conf["pca_variance"] = None
    if args.force:
        conf["force"] = True
    try:
        print(f"Airflow home: {env['AIRFLOW_HOME']} (metadata DB: airflow db migrate)")
        migrate_db(env)
        print(f"running DAG {DAG_ID} with conf {json.dumps(conf)}")
        with run_console(config.results_dir, DAG_ID) as console:
            run_id, state, states = run_dag(conf)
    except LocalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    run_dir = run_results_dir(config.results_dir, DAG_ID, run_id)
    if state != "success":
        report_failure(run_id, state, states, console)
        return 1
    if states.get("run_feature_job") == "skipped":
        print(summarise_skipped(run_dir.parent, run_id))
        return 0
    print(summarise(run_dir, decision))
    return 0


def run_console(results_dir: Path, dag_id: str, **kwargs: Any) -> RunConsole:
    """The quiet console of a run: full output to ``<results dir>/../logs/<dag>-<time>.log``."""
    return RunConsole(
        run_log_path(Path(results_dir).parent / "logs", dag_id),
        state_of=task_state_lookup(dag_id),
        **kwargs,
    )


def report_failure(
    run_id: str, state: str, states: dict[str, str], console: RunConsole | None
) -> None:
    """On stderr: which tasks failed, the failing task's last log lines, the job's reason."""
    failed = ", ".join(f"{task}={s}" for task, s in sorted(states.items()) if s != "success")
    print(f"error: run {run_id} ended {state} ({failed}).", file=sys.stderr)
    if console is not None:
        print(console.failure_report(states), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
