"""Separability benchmark: what the class-separability step adds to the job's PCA step.

Synthetic features shaped like MobileNetV2's (``benchmarks/pca.py``'s matrix: non-negative,
a decaying spectrum) plus a per-label offset in a few dozen directions, so that the labels
are partly apart; 80 % of each label's rows are ``Training``, the rest ``Test``. Written as
parquet and read back, as the job reads ``features/``. In one Spark session, measured in
this run on this machine:

1. the PCA step as the job runs it: ``pca.fit_transform`` (k from a 0.95 target) and the
   write of the projection (``pca/``, here a no-op write);
2. the separability step on the same projected rows: ``separability.measure`` (one
   multinomial logistic regression per k of the curve and one on the full features);
3. the ratio of the two, and each fit's share.

The first round warms the session up (Python workers, JVM code paths); the figures are the
medians of the following rounds.

    python benchmarks/separability.py --rows 4096 --dim 1280 --labels 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from _memory import PeakMemory  # noqa: E402
from _output import emit  # noqa: E402
from pca import make_matrix  # noqa: E402

TRAIN_FRACTION = 0.8


def labelled_rows(
    rows: int, dim: int, labels: int, *, separation: float, seed: int = 0
) -> tuple[np.ndarray, list[str], list[str]]:
    """(features, labels, splits): each label's rows offset along its own random direction
    of a 32-dim subspace, ``separation`` times the features' typical spread."""
    rng = np.random.default_rng(seed + 1)
    x = make_matrix(rows, dim, seed)
    label_of = np.arange(rows) % labels
    basis = np.linalg.qr(rng.normal(size=(dim, 32)))[0]
    offsets = rng.normal(size=(labels, 32)) @ basis.T
    spread = float(x.std(axis=0).mean())
    x = np.maximum(x + separation * spread * offsets[label_of], 0.0).astype(np.float32)
    rank = np.arange(rows) // labels  # the row's position within its label
    per_label = np.bincount(label_of, minlength=labels)[label_of]
    splits = np.where(rank < TRAIN_FRACTION * per_label, "Training", "Test")
    return x, [f"Fruit {i:03d}" for i in label_of], splits.tolist()


def job_like_frame(spark, folder: Path, x: np.ndarray, labels: list[str], splits: list[str]):
    """The rows as the job's ``features/`` parquet, read back."""
    import pandas as pd  # noqa: PLC0415 (lazy: loads pandas and pyarrow)

    pdf = pd.DataFrame(
        {
            "path": [
                f"{s}/{lab}/{i}.jpg" for i, (s, lab) in enumerate(zip(splits, labels, strict=True))
            ],
            "split": splits,
            "label": labels,
            "features": list(x),
        }
    )
    schema = "path string, split string, label string, features array<float>"
    spark.createDataFrame(pdf, schema).write.mode("overwrite").parquet(str(folder))
    return spark.read.parquet(str(folder))


def one_round(good, *, variance: float, max_iter: int, reg_param: float) -> dict:
    from spark_jobs import pca, separability  # noqa: PLC0415 (lazy: loads pyspark and pandas)

    t0 = time.perf_counter()
    projected, result = pca.fit_transform(good, target_variance=variance)
    projected.select("path", "split", "label", "pca").write.format("noop").mode("overwrite").save()
    t1 = time.perf_counter()
    section = separability.measure(projected, k=result.k, max_iter=max_iter, reg_param=reg_param)
    t2 = time.perf_counter()
    return {"pca_s": t1 - t0, "separability_s": t2 - t1, "section": section}


def main(argv: list[str] | None = None) -> int:
    from spark_jobs import separability  # noqa: PLC0415 (lazy: loads pyspark and pandas)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--labels", type=int, default=32)
    parser.add_argument("--separation", type=float, default=3.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--variance", type=float, default=0.95)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds after a warm-up")
    parser.add_argument("--max-iter", type=int, default=separability.MAX_ITER)
    parser.add_argument("--reg-param", type=float, default=separability.REG_PARAM)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark)

    x, labels, splits = labelled_rows(args.rows, args.dim, args.labels, separation=args.separation)
    spark = build_session(
        master=f"local[{args.cores}]",
        extra_conf={"spark.ui.enabled": "false", "spark.driver.memory": "4g"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    settings = {"variance": args.variance, "max_iter": args.max_iter, "reg_param": args.reg_param}
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
        good = job_like_frame(spark, Path(tmp) / "features", x, labels, splits)
        warm_up = one_round(good, **settings)
        rounds = [one_round(good, **settings) for _ in range(args.rounds)]
    spark.stop()

    pca_s = statistics.median(r["pca_s"] for r in rounds)
    sep_s = statistics.median(r["separability_s"] for r in rounds)
    section = rounds[-1]["section"]
    result = {
        "rows": args.rows,
        "dim": args.dim,
        "labels": args.labels,
        "cores": args.cores,
        "max_iter": args.max_iter,
        "reg_param": args.reg_param,
        "pca_step_s": pca_s,
        "separability_s": sep_s,
        "ratio_separability_to_pca": sep_s / pca_s,
        "pca_step_s_by_round": [r["pca_s"] for r in rounds],
        "separability_s_by_round": [r["separability_s"] for r in rounds],
        "cold_pca_step_s": warm_up["pca_s"],
        "cold_separability_s": warm_up["separability_s"],
        "separability": section,
        "peak_memory_gib": mem.peak_gib,
    }
    curve = ", ".join(
        f"k={j}: {a:.3f}" for j, a in zip(section["ks"], section["accuracy_by_k"], strict=True)
    )
    emit(
        result,
        f"{args.rows} rows x {args.dim}, {args.labels} labels ({section['train_rows']} Training, "
        f"{section['test_rows']} Test), local[{args.cores}], maxIter {args.max_iter}, "
        f"regParam {args.reg_param}:\n"
        f"PCA step (fit + projection write) {pca_s:.2f} s, separability {sep_s:.2f} s "
        f"(median of {len(rounds)}; cold: {warm_up['pca_s']:.2f} s, "
        f"{warm_up['separability_s']:.2f} s): separability / PCA = {sep_s / pca_s:.2f}x\n"
        f"Test accuracy {curve}; all {section['feature_dim']} features: "
        f"{section['accuracy_full']:.3f}; chance {section['chance']:.3f}; "
        f"peak memory {mem.peak_gib:.2f} GiB",
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
