"""PCA of the feature vectors: centre, fit once, read the explained-variance curve, choose k.

Two solvers give the same MLlib models (``StandardScalerModel`` centres, ``PCAModel``
projects; both are MLlib's own transforms):

``gram`` (default)
    One pass over the persisted features: each partition folds its rows, in chunks, into
    a count, a mean and a centred scatter matrix with numpy (a BLAS-3 ``syrk`` per
    chunk), in ``mapInArrow``; the driver merges the partitions with the pairwise update
    of Chan, Golub and LeVeque (no ``sum(x^2) - n * mean^2`` cancellation) and
    eigen-decomposes the ``d x d`` covariance with LAPACK (``numpy.linalg.eigh``).
``mllib``
    MLlib's own fit: ``StandardScaler`` (one pass for the mean), then ``PCA.fit``
    (``RowMatrix``: one BLAS-2 ``spr`` update of the packed covariance per row, then an
    SVD). The same curve, a 5-10x slower fit on 20,000 x 1280 (``benchmarks/pca.py``); kept
    as the reference the ``gram`` solver is tested against.

MLlib's ``PCA`` does not centre its input (``transform`` returns ``X . pc``): both
solvers centre with the feature mean before projecting. The curve has every component
the data can have (``min(d, n)``); the projection uses only the first ``k``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import SparkContext
from pyspark.errors import PythonException
from pyspark.ml.common import _py2java
from pyspark.ml.feature import PCA, PCAModel, StandardScaler, StandardScalerModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SOLVERS = ("gram", "mllib")
DEFAULT_SOLVER = "gram"

# Cumulative sums are compared with a little slack: a target of 0.95 must be met by a
# curve reaching 0.9499999999999999 after float summation.
_EPS = 1e-9
# Rows folded per BLAS call: 4096 x 1280 float64 is 42 MB per Python worker, and large
# enough for syrk to run near peak (Arrow batches are only maxRecordsPerBatch rows).
_CHUNK_ROWS = 4096
_PARTIAL_SCHEMA = "n long, dim int, mean binary, scatter binary"
# Partials merged per executor task at each level of the tree, and the most the driver
# fetches: 8 x 6.5 MB (d = 1280) is far below spark.driver.maxResultSize's 1 GiB default.
TREE_FAN_IN = 8


def _arrow_partial_schema() -> pa.Schema:

    return pa.schema(
        [("n", pa.int64()), ("dim", pa.int32()), ("mean", pa.binary()), ("scatter", pa.binary())]
    )


class PcaInputError(ValueError):
    """Features a PCA cannot be fitted on (too few rows, no variance, NaN, ragged)."""


@dataclass(frozen=True)
class PcaResult:
    """The fitted curve and the chosen k (``metrics.json``'s ``pca`` section)."""

    k: int
    target_variance: float | None
    fixed_k: int | None
    explained_variance: list[float]
    mean: list[float] = field(repr=False)
    solver: str = DEFAULT_SOLVER

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
            "solver": self.solver,
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


# --- the gram solver: moments per partition, merged on the driver ---------------------


@dataclass
class Moments:
    """Count, mean and centred scatter matrix ``sum((x - mean)(x - mean)^T)`` of rows."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray


class ShiftedFold:
    """Moments of rows added chunk by chunk, with one in-place BLAS-3 update per chunk.

    Rows are shifted by the first chunk's mean before their products are summed, so
    ``sum(y y^T) - n m m^T`` (with ``m`` the mean of the shifted rows, near zero) loses
    no precision the way the same sum on unshifted rows would.
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift = np.zeros(0)
        self._total = np.zeros(0)
        self._gram = np.zeros((0, 0))

    def add(self, rows: np.ndarray) -> None:
        if self.n == 0:
            self._shift = rows.mean(axis=0, dtype=np.float64)
            self._total = np.zeros(rows.shape[1])
            self._gram = np.zeros((rows.shape[1], rows.shape[1]))
        shifted = rows - self._shift  # float64 whatever the rows' type
        self._gram += shifted.T @ shifted  # numpy calls syrk for a.T @ a
        self._total += shifted.sum(axis=0)
        self.n += len(rows)

    def moments(self) -> Moments:
        offset = self._total / self.n
        return Moments(self.n, self._shift + offset, self._gram - self.n * np.outer(offset, offset))


def _partition_folder(
    chunk_rows: int,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` body: one row with the moments of a partition's vectors.

    The single input column is ``array<float>``; its values are read as one flat numpy
    buffer (no per-row Python objects) and folded ``chunk_rows`` rows at a time. The
    scatter matrix is symmetric, so only its upper triangle is sent back to the driver.
    """
    return lambda batches: _fold_partition(batches, chunk_rows)


def _fold_partition(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.RecordBatch]:

    fold = ShiftedFold()
    dim: int | None = None
    pending: list[np.ndarray] = []
    pending_rows = 0

    for batch in batches:
        column = batch.column(0)
        if len(column) == 0:
            continue
        if column.null_count:
            raise PcaInputError("a feature vector is null")
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        dim = int(lengths[0]) if dim is None else dim
        if (lengths != dim).any():
            raise PcaInputError(
                f"feature vectors differ in length: {sorted({int(v) for v in lengths})}"
            )
        values = column.flatten()
        if values.null_count:
            raise PcaInputError("a feature vector holds a null value")
        pending.append(values.to_numpy(zero_copy_only=False).reshape(len(column), dim))
        pending_rows += len(column)
        if pending_rows >= chunk_rows:
            fold.add(np.concatenate(pending))
            pending, pending_rows = [], 0
    if pending:
        fold.add(np.concatenate(pending))
    if fold.n == 0:
        return
    assert dim is not None
    moments = fold.moments()
    upper = np.triu_indices(dim)
    yield pa.RecordBatch.from_pydict(
        {
            "n": [moments.n],
            "dim": [dim],
            "mean": [moments.mean.tobytes()],
            "scatter": [moments.scatter[upper].tobytes()],
        },
        schema=_arrow_partial_schema(),
    )


def feature_moments(
    df: DataFrame,
    features_col: str = "features",
    *,
    chunk_rows: int = _CHUNK_ROWS,
    fan_in: int = TREE_FAN_IN,
) -> Moments:
    """Count, mean and centred scatter of an ``array<float|double>`` column, in one pass.

    Each partition folds its rows into one partial (~6.5 MB for d = 1280); the partials
    are then merged on the executors in a tree, ``fan_in`` at a time (a shuffle of the
    partials only, as ``treeAggregate`` does), until at most ``fan_in`` are left for the
    driver: what the driver fetches stays under ``spark.driver.maxResultSize`` and its
    merge stays small whatever the number of partitions.

    Raises :class:`PcaInputError` for vectors of different lengths or nulls; no rows
    gives ``n == 0``.
    """

    if fan_in < 2:
        raise ValueError(f"fan_in must be >= 2, got {fan_in}")
    vectors = df.select(features_col)
    query = vectors.mapInArrow(_partition_folder(chunk_rows), _PARTIAL_SCHEMA)
    partials_left = vectors.rdd.getNumPartitions()
    while partials_left > fan_in:
        partials_left = math.ceil(partials_left / fan_in)
        query = query.repartition(partials_left).mapInArrow(_merge_arrow, _PARTIAL_SCHEMA)
    try:
        with warnings.catch_warnings():
            # toPandas repeats a worker's error as a UserWarning before raising it.
            warnings.simplefilter("ignore", UserWarning)
            partials = query.toPandas()  # through Arrow: the bytes are not pickled
    except PythonException as exc:
        # The worker's own PcaInputError, re-raised as one on the driver.
        found = re.search(r"PcaInputError: (.+)", str(exc))
        if found is None:
            raise
        raise PcaInputError(found.group(1).strip()) from exc
    dims = set(partials["dim"].tolist())
    if len(dims) > 1:
        raise PcaInputError(f"feature vectors differ in length: {sorted(dims)}")
    if not dims:
        return Moments(0, np.zeros(0), np.zeros((0, 0)))
    return merge_partials(
        dims.pop(),
        partials["n"].to_numpy(dtype=np.int64),
        [np.frombuffer(m, dtype=np.float64) for m in partials["mean"]],
        [np.frombuffer(t, dtype=np.float64) for t in partials["scatter"]],
    )


def _merge_arrow(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body of one tree level: the partials of a partition, merged
    into one (same schema as :func:`_fold_partition`'s output)."""

    counts: list[int] = []
    means: list[np.ndarray] = []
    scatters: list[np.ndarray] = []
    dims: set[int] = set()
    for batch in batches:
        rows = batch.to_pydict()
        counts += rows["n"]
        dims.update(rows["dim"])
        means += [np.frombuffer(m, dtype=np.float64) for m in rows["mean"]]
        scatters += [np.frombuffer(t, dtype=np.float64) for t in rows["scatter"]]
    if not counts:
        return
    if len(dims) > 1:
        raise PcaInputError(f"feature vectors differ in length: {sorted(dims)}")
    dim = dims.pop()
    merged = merge_partials(dim, np.asarray(counts, dtype=np.int64), means, scatters)
    yield pa.RecordBatch.from_pydict(
        {
            "n": [merged.n],
            "dim": [dim],
            "mean": [merged.mean.tobytes()],
            "scatter": [merged.scatter[np.triu_indices(dim)].tobytes()],
        },
        schema=_arrow_partial_schema(),
    )


def merge_partials(
    dim: int, counts: np.ndarray, means: list[np.ndarray], upper_scatters: list[np.ndarray]
) -> Moments:
    """Merge per-partition moments (scatters as packed upper triangles) in one step.

    ``S = sum(S_p) + sum(n_p (m_p - m)(m_p - m)^T)``: the pairwise update of Chan et al.
    applied to all partitions at once; the triangles are summed packed and unpacked once.
    """
    n = int(counts.sum())
    mean_rows = np.vstack(means)
    mean = counts @ mean_rows / n
    deviations = mean_rows - mean
    upper = np.triu_indices(dim)
    scatter = np.zeros((dim, dim))
    scatter[upper] = np.sum(upper_scatters, axis=0)
    scatter += np.triu(scatter, 1).T
    scatter += (deviations.T * counts) @ deviations
    return Moments(n, mean, scatter)


def eigen_decomposition(moments: Moments) -> tuple[np.ndarray, np.ndarray]:
    """(explained-variance fractions, principal components as columns), largest first,
    for the ``min(d, n)`` components the rows can have."""
    if moments.n < 2:
        raise PcaInputError(f"PCA needs at least 2 valid images, got {moments.n}")
    if not np.isfinite(moments.scatter).all():
        raise PcaInputError("the feature vectors hold NaN or infinite values")
    covariance = moments.scatter / (moments.n - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    # Round-off leaves tiny negative eigenvalues where the covariance is rank-deficient.
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    total = eigenvalues.sum()
    if total <= 0.0:
        raise PcaInputError("all feature vectors are identical: there is no variance to explain")
    n_fit = min(len(eigenvalues), moments.n)
    return eigenvalues[:n_fit] / total, eigenvectors[:, :n_fit]


def fix_signs(components: np.ndarray) -> np.ndarray:
    """Components (columns) with each sign chosen so its largest-magnitude entry is
    positive: a component is only defined up to its sign, and reruns on the same data
    should give the same projection."""
    rows = np.argmax(np.abs(components), axis=0)
    signs = np.sign(components[rows, np.arange(components.shape[1])])
    signs[signs == 0] = 1.0
    return components * signs


# --- MLlib models ----------------------------------------------------------------------


def _java_model(class_name: str, *args: Any) -> Any:
    """A JVM MLlib model built from fitted values (PySpark has no public constructor)."""

    sc = SparkContext._active_spark_context
    assert sc is not None, "no active SparkContext"
    java_class = sc._jvm
    for part in class_name.split("."):
        java_class = getattr(java_class, part)
    return java_class(*(_py2java(sc, a) if not isinstance(a, str) else a for a in args))


def scaler_model(mean: np.ndarray, input_col: str, output_col: str) -> StandardScalerModel:
    """MLlib's centring transform (``withMean=True, withStd=False``) for a known mean."""
    java_model = _java_model(
        "org.apache.spark.ml.feature.StandardScalerModel",
        "centre_features",
        DenseVector(np.ones(len(mean))),
        DenseVector(np.asarray(mean, dtype=np.float64)),
    )
    model = StandardScalerModel(java_model)
    model._set(inputCol=input_col, outputCol=output_col, withMean=True, withStd=False)
    return model


def pca_model(
    components: np.ndarray, explained: np.ndarray, input_col: str, output_col: str
) -> PCAModel:
    """MLlib's projection on the given components (``d x k``, one per column)."""
    d, k = components.shape
    java_model = _java_model(
        "org.apache.spark.ml.feature.PCAModel",
        "pca_features",
        DenseMatrix(d, k, np.asarray(components, dtype=np.float64).flatten(order="F").tolist()),
        DenseVector(np.asarray(explained, dtype=np.float64)),
    )
    model = PCAModel(java_model)
    # Params are copied to the JVM object on transform (k is needed by its schema check).
    model._set(k=k, inputCol=input_col, outputCol=output_col)
    return model


def centre(df: DataFrame, input_col: str, output_col: str) -> tuple[DataFrame, list[float]]:
    """Subtract the column mean from a vector column (MLlib StandardScaler, no scaling)."""
    scaler = StandardScaler(
        inputCol=input_col, outputCol=output_col, withMean=True, withStd=False
    ).fit(df)
    return scaler.transform(df), scaler.mean.toArray().tolist()


def _fit_mllib(
    vectors: DataFrame, n_rows: int, dim: int
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """MLlib's own fit: (curve, components, mean)."""
    centred, mean = centre(vectors, "_vec", "_centred")
    model = PCA(k=min(dim, n_rows), inputCol="_centred", outputCol="_pca_vec").fit(centred)
    return model.explainedVariance.toArray(), model.pc.toArray(), mean


@dataclass(frozen=True)
class FittedPca:
    """A fitted PCA: the curve and k, and the MLlib models that centre and project."""

    result: PcaResult
    scaler: StandardScalerModel = field(repr=False)
    model: PCAModel = field(repr=False)

    def transform(
        self, df: DataFrame, features_col: str = "features", output_col: str = "pca"
    ) -> DataFrame:
        """``df`` with ``output_col``: ``features_col`` centred and projected on the k
        components (array<double> of length k)."""
        vectors = df.withColumn("_vec", array_to_vector(F.col(features_col)))
        projected = self.model.transform(self.scaler.transform(vectors))
        return projected.withColumn(output_col, vector_to_array(F.col("_pca_vec"))).drop(
            "_vec", "_centred", "_pca_vec"
        )


def fit(
    df: DataFrame,
    *,
    features_col: str = "features",
    target_variance: float | None = None,
    fixed_k: int | None = None,
    solver: str = DEFAULT_SOLVER,
) -> FittedPca:
    """Fit the PCA of ``features_col`` (array<float>) once and choose k.

    ``df`` should be persisted by the caller: the fit reads it (``gram``: once;
    ``mllib``: four times), and the projection reads it again.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "gram":
        moments = feature_moments(df, features_col)
        explained, components = eigen_decomposition(moments)
        mean = moments.mean
    else:
        n_rows = df.count()
        if n_rows < 2:
            raise PcaInputError(f"PCA needs at least 2 valid images, got {n_rows}")
        dim = len(df.select(features_col).first()[0])
        vectors = df.withColumn("_vec", array_to_vector(F.col(features_col)))
        explained, components, mean = _fit_mllib(vectors, n_rows, dim)
    k = choose_k(explained.tolist(), target_variance=target_variance, fixed_k=fixed_k)
    result = PcaResult(
        k=k,
        target_variance=target_variance,
        fixed_k=fixed_k,
        explained_variance=explained.tolist(),
        mean=np.asarray(mean, dtype=np.float64).tolist(),
        solver=solver,
    )
    return FittedPca(
        result,
        scaler_model(np.asarray(mean), "_vec", "_centred"),
        pca_model(fix_signs(components[:, :k]), explained[:k], "_centred", "_pca_vec"),
    )


def fit_transform(
    df: DataFrame,
    *,
    features_col: str = "features",
    output_col: str = "pca",
    target_variance: float | None = None,
    fixed_k: int | None = None,
    solver: str = DEFAULT_SOLVER,
) -> tuple[DataFrame, PcaResult]:
    """Fit (see :func:`fit`) and project ``df``: (``df`` with ``output_col``, the curve)."""
    fitted = fit(
        df,
        features_col=features_col,
        target_variance=target_variance,
        fixed_k=fixed_k,
        solver=solver,
    )
    return fitted.transform(df, features_col, output_col), fitted.result
