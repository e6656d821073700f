"""PCA benchmark: Spark MLlib PCA (as the job runs it) against numpy on the same matrix.

A 20,000 x 1280 float32 matrix shaped like MobileNetV2 features (non-negative, a decaying
spectrum, not centred). Prints, measured in this run:

1. MLlib: centring (StandardScaler) + PCA fit with min(n, d) components, on a persisted
   DataFrame, as ``spark_jobs.pca.fit_transform`` does; and the projection on k components.
2. numpy: mean-centring + covariance + ``eigh`` (+ the projection).
3. The ratio Spark / numpy (target <= 2x) and the largest difference between the two
   explained-variance curves (target: equal).
4. For comparison only (not used by the job): the covariance computed per partition with
   numpy (``mapInPandas``: a BLAS-3 Gram matrix per partition, summed by Spark) + ``eigh``
   on the driver. MLlib computes the covariance with one BLAS-2 update per row and
   eigen-decomposes it with netlib's pure-Java LAPACK when no native LAPACK is installed.

    python benchmarks/pca.py --rows 20000 --dim 1280
"""

from __future__ import annotations

import argparse
import json
import os
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
    import pandas as pd
    from pyspark import StorageLevel

    pdf = pd.DataFrame({"features": list(x)})
    df = spark.createDataFrame(pdf, "features array<float>").repartition(partitions)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    df.count()
    return df


def mllib_pca(df, target: float) -> tuple[np.ndarray, int, float, float]:
    """(curve, k, fit seconds, projection seconds) with the job's own code path."""
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    from spark_jobs import pca

    t0 = time.perf_counter()
    vectors = df.withColumn("_vec", array_to_vector(F.col("features")))
    n, dim = vectors.count(), len(df.first()["features"])
    centred, _ = pca.centre(vectors, "_vec", "_centred")
    model = PCA(k=min(n, dim), inputCol="_centred", outputCol="_pca").fit(centred)
    curve = model.explainedVariance.toArray()
    k = pca.choose_k(curve.tolist(), target_variance=target)
    t1 = time.perf_counter()
    pca._first_components(model, k).transform(centred).select("_pca").write.format("noop").mode(
        "overwrite"
    ).save()
    t2 = time.perf_counter()
    return curve, k, t1 - t0, t2 - t1


def gram_pca(df) -> tuple[np.ndarray, float]:
    """Alternative (not used by the job): per-partition numpy Gram matrix + driver eigh."""
    import pandas as pd

    t0 = time.perf_counter()
    dim = len(df.first()["features"])

    def partial_sums(batches):
        gram = np.zeros((dim, dim))
        total = np.zeros(dim)
        count = 0
        for batch in batches:
            x = np.stack(batch["features"].to_numpy()).astype(np.float64)
            gram += x.T @ x
            total += x.sum(axis=0)
            count += len(x)
        yield pd.DataFrame({"gram": [gram.ravel()], "total": [total], "count": [count]})

    parts = df.mapInPandas(
        partial_sums, "gram array<double>, total array<double>, count long"
    ).collect()
    gram = sum(np.asarray(p["gram"]).reshape(dim, dim) for p in parts)
    total = sum(np.asarray(p["total"]) for p in parts)
    n = sum(p["count"] for p in parts)
    mean = total / n
    cov = (gram - n * np.outer(mean, mean)) / (n - 1)
    eigenvalues = np.linalg.eigvalsh(cov)[::-1]
    return eigenvalues / eigenvalues.sum(), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--variance", type=float, default=0.95)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from spark_jobs.session import build_session

    x = make_matrix(args.rows, args.dim)
    expected, np_fit, _ = numpy_pca(x, None)
    k_np = int(np.argmax(np.cumsum(expected) >= args.variance - 1e-9)) + 1
    _, np_fit, np_proj = numpy_pca(x, k_np)  # second run: warm caches, with projection

    spark = build_session(
        master=f"local[{args.cores}]",
        extra_conf={"spark.ui.enabled": "false", "spark.driver.memory": "4g"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    jvm = spark._jvm
    blas = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    lapack = jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getSimpleName()
    df = spark_frame(spark, x, args.cores)
    with PeakMemory() as mem:
        curve, k, sp_fit, sp_proj = mllib_pca(df, args.variance)
        gram_curve, gram_s = gram_pca(df)
    spark.stop()

    n_fit = len(curve)
    result = {
        "rows": args.rows,
        "dim": args.dim,
        "cores": args.cores,
        "spark_blas": blas,
        "spark_lapack": lapack,
        "numpy_fit_s": np_fit,
        "numpy_fit_and_project_s": np_fit + np_proj,
        "mllib_fit_s": sp_fit,
        "mllib_fit_and_project_s": sp_fit + sp_proj,
        "ratio_fit": sp_fit / np_fit,
        "ratio_fit_and_project": (sp_fit + sp_proj) / (np_fit + np_proj),
        "k": k,
        "k_numpy": k_np,
        "max_abs_diff_explained_variance": float(np.max(np.abs(curve - expected[:n_fit]))),
        "alternative_gram_eigh_s": gram_s,
        "alternative_ratio": gram_s / np_fit,
        "alternative_max_abs_diff": float(np.max(np.abs(gram_curve - expected))),
        "peak_memory_gib": mem.peak_gib,
    }
    print(json.dumps(result, indent=2))
    print(
        f"\nMLlib PCA fit {sp_fit:.2f} s vs numpy {np_fit:.2f} s: {result['ratio_fit']:.1f}x "
        f"(fit + projection {result['ratio_fit_and_project']:.1f}x; target <= 2x; "
        f"BLAS {blas}, LAPACK {lapack})\n"
        f"explained variance: max |MLlib - numpy| = "
        f"{result['max_abs_diff_explained_variance']:.2e}, "
        f"k = {k} (numpy {k_np})\n"
        f"alternative (numpy Gram per partition + eigh, not used by the job): {gram_s:.2f} s, "
        f"{result['alternative_ratio']:.1f}x\npeak memory {mem.peak_gib:.2f} GiB"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
