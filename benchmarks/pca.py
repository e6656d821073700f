"""PCA benchmark: the job's Spark PCA against numpy on the same 20,000 x 1280 matrix.

A float32 matrix shaped like MobileNetV2 features (non-negative, a decaying spectrum, not
centred), persisted in Spark as an ``array<float>`` column like the job's features.
Prints, measured in this run on this machine:

1. numpy (the reference): float64 cast, centring, covariance, ``eigh``, and the
   projection on k components; the median of runs interleaved with the Spark ones, so
   both see the same machine (also printed: one run before Spark started).
2. ``spark_jobs.pca.fit`` and ``.transform`` for each solver, as the job calls them: the
   fit (every step up to the fitted MLlib models and k) and the projection (a no-op
   write of the projected column). ``gram`` is the job's default; ``mllib`` is MLlib's
   own ``PCA.fit``. "cold" is the first call in a fresh session (JVM code paths not yet
   compiled, Python workers not yet started: in the job, featurisation has already
   started them); "warm" is the median of the following calls.
3. Ratios Spark / numpy (target <= 2x) and the largest difference between each
   solver's explained-variance curve and numpy's (target: equal).

    python benchmarks/pca.py --rows 20000 --dim 1280
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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


def make_matrix(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """Non-negative, correlated features with a decaying spectrum (like CNN features)."""
    rng = np.random.default_rng(seed)
    rank = min(dim, 256)
    scales = 1.0 / np.arange(1, rank + 1) ** 0.7
    latent = rng.normal(size=(rows, rank)) * scales
    mixed = latent @ rng.normal(size=(rank, dim)) + 0.05 * rng.normal(size=(rows, dim))
    return np.maximum(mixed + 1.0, 0.0).astype(np.float32)


def numpy_pca(x: np.ndarray, k: int | None) -> tuple[np.ndarray, float, float]:
    """(explained-variance curve, fit seconds, projection seconds)."""
    t0 = time.perf_counter()
    x64 = x.astype(np.float64)
    centred = x64 - x64.mean(axis=0)
    cov = centred.T @ centred / (len(x) - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    t1 = time.perf_counter()
    if k:
        _ = centred @ eigenvectors[:, :k]
    t2 = time.perf_counter()
    return eigenvalues / eigenvalues.sum(), t1 - t0, t2 - t1


def spark_frame(spark, x: np.ndarray, partitions: int):
    import pandas as pd  # noqa: PLC0415 (lazy: loads pandas and pyarrow)
    from pyspark import StorageLevel  # noqa: PLC0415 (lazy: loads pyspark)

    pdf = pd.DataFrame({"features": list(x)})
    df = spark.createDataFrame(pdf, "features array<float>").repartition(partitions)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    df.count()
    return df


def spark_pca(df, target: float, solver: str) -> tuple[np.ndarray, int, float, float]:
    """(curve, k, fit seconds, projection seconds) through the job's own function."""
    from spark_jobs import pca  # noqa: PLC0415 (lazy: loads pyspark and pandas)

    t0 = time.perf_counter()
    fitted = pca.fit(df, target_variance=target, solver=solver)
    t1 = time.perf_counter()
    fitted.transform(df).select("pca").write.format("noop").mode("overwrite").save()
    t2 = time.perf_counter()
    return np.asarray(fitted.result.explained_variance), fitted.result.k, t1 - t0, t2 - t1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--variance", type=float, default=0.95)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved numpy/gram rounds")
    parser.add_argument(
        "--java-blas",
        action="store_true",
        help="keep the JVM off any native BLAS/LAPACK (as on a machine without OpenBLAS)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark)

    x = make_matrix(args.rows, args.dim)
    expected, _, _ = numpy_pca(x, None)
    k_np = int(np.argmax(np.cumsum(expected) >= args.variance - 1e-9)) + 1
    _, np_fit_alone, _ = numpy_pca(x, k_np)  # before Spark starts: a quiet machine

    conf = {"spark.ui.enabled": "false", "spark.driver.memory": "4g"}
    if args.java_blas:
        conf["spark.driver.extraJavaOptions"] = (
            "-Ddev.ludovic.netlib.blas.nativeLib=none -Ddev.ludovic.netlib.lapack.nativeLib=none"
        )
    spark = build_session(master=f"local[{args.cores}]", extra_conf=conf)
    spark.sparkContext.setLogLevel("ERROR")
    jvm = spark._jvm
    blas = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    lapack = jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getSimpleName()
    df = spark_frame(spark, x, args.cores)
    numpy_runs: list[tuple[float, float]] = []
    runs: dict[str, list[tuple[np.ndarray, int, float, float]]] = {"gram": [], "mllib": []}
    with PeakMemory() as mem:
        runs["gram"].append(spark_pca(df, args.variance, "gram"))  # cold
        # Interleaved, so that numpy and Spark see the same machine (page cache, other
        # load, the idle JVM next to the driver).
        for _ in range(args.rounds):
            numpy_runs.append(numpy_pca(x, k_np)[1:])
            runs["gram"].append(spark_pca(df, args.variance, "gram"))
        runs["mllib"] = [spark_pca(df, args.variance, "mllib") for _ in range(2)]
    spark.stop()

    np_fit = statistics.median(r[0] for r in numpy_runs)
    np_proj = statistics.median(r[1] for r in numpy_runs)
    result: dict[str, object] = {
        "rows": args.rows,
        "dim": args.dim,
        "cores": args.cores,
        "spark_blas": blas,
        "spark_lapack": lapack,
        "numpy_fit_before_spark_s": np_fit_alone,
        "numpy_fit_s": np_fit,
        "numpy_fit_range_s": [min(r[0] for r in numpy_runs), max(r[0] for r in numpy_runs)],
        "numpy_project_s": np_proj,
        "k_numpy": k_np,
    }
    lines = []
    for solver, measured in runs.items():
        _, k, cold_fit, _ = measured[0]
        warm = measured[1:]
        warm_fit = statistics.median(m[2] for m in warm)
        warm_proj = statistics.median(m[3] for m in warm)
        diff = max(float(np.max(np.abs(m[0] - expected[: len(m[0])]))) for m in measured)
        entry: dict[str, object] = {
            "k": k,
            "fit_cold_s": cold_fit,
            "fit_warm_s": warm_fit,
            "fit_warm_range_s": [min(m[2] for m in warm), max(m[2] for m in warm)],
            "project_warm_s": warm_proj,
            "ratio_fit_cold": cold_fit / np_fit,
            "ratio_fit_warm": warm_fit / np_fit,
            "ratio_fit_and_project_warm": (warm_fit + warm_proj) / (np_fit + np_proj),
            "max_abs_diff_explained_variance": diff,
        }
        if solver == "gram":
            per_round = [m[2] / n[0] for m, n in zip(warm, numpy_runs, strict=True)]
            entry["ratio_fit_per_round"] = per_round
        result[solver] = entry
        lines.append(
            f"{solver:5s}: fit {warm_fit:.2f} s warm ({warm_fit / np_fit:.2f}x numpy), "
            f"{cold_fit:.2f} s cold ({cold_fit / np_fit:.2f}x); fit + projection "
            f"{(warm_fit + warm_proj) / (np_fit + np_proj):.2f}x; "
            f"max |curve - numpy| {diff:.1e}; k = {k}"
        )
    result["peak_memory_gib"] = mem.peak_gib
    emit(
        result,
        f"numpy: fit {np_fit:.2f} s (median of {len(numpy_runs)} runs between the Spark "
        f"ones; {np_fit_alone:.2f} s before Spark started), projection {np_proj:.2f} s, "
        f"k = {k_np}\n"
        + "\n".join(lines)
        + f"\ntarget: gram fit <= 2x numpy, same curve (Spark BLAS {blas}, LAPACK {lapack}); "
        f"peak memory {mem.peak_gib:.2f} GiB",
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
