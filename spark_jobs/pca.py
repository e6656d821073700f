"""PCA with Spark MLlib: centre, fit once, read the explained-variance curve, choose k.

MLlib's ``PCA`` does not centre its input (``transform`` returns ``X . pc``), so the
features are centred first with ``StandardScaler(withMean=True, withStd=False)``. The
fit asks for every component the data can have (``min(d, n)``), which costs the same as
asking for fewer: MLlib eigen-decomposes the full ``d x d`` covariance either way. The
projection then uses only the first ``k`` components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.ml.feature import PCA, PCAModel, StandardScaler
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Cumulative sums are compared with a little slack: a target of 0.95 must be met by a
# curve reaching 0.9499999999999999 after float summation.
_EPS = 1e-9


class PcaInputError(ValueError):
    """Too few rows to fit a PCA."""


@dataclass(frozen=True)
class PcaResult:
    """The fitted curve and the chosen k (``metrics.json``'s ``pca`` section)."""

    k: int
    target_variance: float | None
    fixed_k: int | None
    explained_variance: list[float]
    mean: list[float] = field(repr=False)

    @property
    def cumulative_variance(self) -> list[float]:
        return np.cumsum(self.explained_variance).tolist()

    @property
    def variance_at_k(self) -> float:
        return float(self.cumulative_variance[self.k - 1])

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "target_variance": self.target_variance,
            "fixed_k": self.fixed_k,
            "explained_variance": self.explained_variance,
            "cumulative_variance": self.cumulative_variance,
            "variance_at_k": self.variance_at_k,
        }


def choose_k(
    explained_variance: list[float],
    *,
    target_variance: float | None = None,
    fixed_k: int | None = None,
) -> int:
    """Smallest k whose cumulative explained variance reaches ``target_variance``, or
    ``fixed_k`` capped at the number of fitted components. Exactly one must be given."""
    if (target_variance is None) == (fixed_k is None):
        raise ValueError("give exactly one of target_variance or fixed_k")
    n = len(explained_variance)
    if n == 0:
        raise ValueError("empty explained-variance curve")
    if fixed_k is not None:
        if fixed_k < 1:
            raise ValueError(f"fixed_k must be >= 1, got {fixed_k}")
        return min(fixed_k, n)
    assert target_variance is not None
    if not 0.0 < target_variance <= 1.0:
        raise ValueError(f"target_variance must be in (0, 1], got {target_variance}")
    cumulative = np.cumsum(explained_variance)
    reached = np.nonzero(cumulative >= target_variance - _EPS)[0]
    return int(reached[0]) + 1 if len(reached) else n


def centre(df: DataFrame, input_col: str, output_col: str) -> tuple[DataFrame, list[float]]:
    """Subtract the column mean from a vector column (MLlib StandardScaler, no scaling)."""
    scaler = StandardScaler(
        inputCol=input_col, outputCol=output_col, withMean=True, withStd=False
    ).fit(df)
    return scaler.transform(df), scaler.mean.toArray().tolist()


def _first_components(model: PCAModel, k: int) -> PCAModel:
    """The same fitted model restricted to its first ``k`` principal components.

    Projecting on all ``min(d, n)`` fitted components and slicing would cost
    ``n * d * min(d, n)`` instead of ``n * d * k``; PySpark has no public constructor
    for a PCAModel, so the JVM one is called with the first k columns of ``pc``.
    """
    from pyspark import SparkContext
    from pyspark.ml.common import _py2java

    if k == model.pc.numCols:
        return model
    pc = model.pc.toArray()[:, :k]
    pc_k = DenseMatrix(pc.shape[0], k, pc.flatten(order="F").tolist())
    explained = DenseVector(model.explainedVariance.toArray()[:k])
    sc = SparkContext._active_spark_context
    assert sc is not None, "no active SparkContext"
    java_model = sc._jvm.org.apache.spark.ml.feature.PCAModel(
        model.uid,
        _py2java(sc, pc_k),
        _py2java(sc, explained),
    )
    restricted = PCAModel(java_model)
    # Params are copied to the JVM object on transform (k is needed by its schema check).
    restricted._set(k=k, inputCol=model.getInputCol(), outputCol=model.getOutputCol())
    return restricted


def fit_transform(
    df: DataFrame,
    *,
    features_col: str = "features",
    output_col: str = "pca",
    target_variance: float | None = None,
    fixed_k: int | None = None,
    max_components: int | None = None,
) -> tuple[DataFrame, PcaResult]:
    """Centre ``features_col`` (array<float>), fit MLlib PCA once, project on k components.

    ``df`` should be persisted by the caller: it is read three times (mean, fit,
    projection). Returns ``df`` with ``output_col`` (array<double> of length k) in place
    of ``features_col``'s helper columns, and the curve.
    """
    n_rows = df.count()
    if n_rows < 2:
        raise PcaInputError(f"PCA needs at least 2 valid images, got {n_rows}")
    vectors = df.withColumn("_vec", array_to_vector(F.col(features_col)))
    dim = len(df.select(features_col).first()[0])
    centred, mean = centre(vectors, "_vec", "_centred")
    n_fit = min(dim, n_rows, max_components or dim)
    model = PCA(k=n_fit, inputCol="_centred", outputCol="_pca_vec").fit(centred)
    explained = model.explainedVariance.toArray().tolist()
    k = choose_k(explained, target_variance=target_variance, fixed_k=fixed_k)
    projected = _first_components(model, k).transform(centred)
    out = projected.withColumn(output_col, vector_to_array(F.col("_pca_vec"))).drop(
        "_vec", "_centred", "_pca_vec"
    )
    result = PcaResult(
        k=k,
        target_variance=target_variance,
        fixed_k=fixed_k,
        explained_variance=explained,
        mean=mean,
    )
    return out, result
