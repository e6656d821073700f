"""Class separability: does the PCA's space keep the labels apart? Measured, not eyeballed.

On data with both a ``Training`` and a ``Test`` split (Fruits-360's ``<split>/<Label>/``
layout), a multinomial logistic regression (MLlib's ``LogisticRegression``,
``family="multinomial"``) is fitted on the Training rows and scored on the Test rows:

- on the PCA's first ``k`` components (the k the job chose),
- on the first 2, 5, 10, 20 and 50 components (those below k), from the same projection:
  the components are sorted by explained variance, so the first ``j`` of the k-dim
  projection are the ``j``-component PCA, and the accuracies lie on the same axis as the
  explained-variance curve,
- on the full feature vectors (1280-d): what the reduction costs in accuracy.

Accuracy is the fraction of Test rows whose predicted label is theirs (MLlib's
``MulticlassClassificationEvaluator``); a Test label with no Training row counts as wrong.
``chance`` is the accuracy of always predicting the most frequent Training label.

Cost: one small multinomial fit per k and one on the full features, which dominates. Each
fit is capped at :data:`MAX_ITER` L-BFGS iterations with an L2 penalty :data:`REG_PARAM`,
on at most about :data:`MAX_TRAIN_PER_LABEL` Training rows per label (see there why); the
rows are cached once for all fits. Without a Test split, without
Training rows or with a single Training label the section is ``{"absent": "<why>"}``;
:func:`measure_or_absent` never raises, so this side measurement never fails a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StringIndexerModel
from pyspark.ml.functions import array_to_vector
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

TRAIN_SPLIT = "Training"
TEST_SPLIT = "Test"
# The smaller k of the accuracy curve (those below the chosen k are measured).
CURVE_KS: tuple[int, ...] = (2, 5, 10, 20, 50)
# L-BFGS iterations per fit. Test accuracy (an argmax) settles long before the loss does:
# on benchmarks/separability.py's data it moves by under a percentage point after 30, and
# each iteration is one pass over the Training rows (on the full features, ~n x 1280 x
# labels multiply-adds), so the cap is what keeps the step to seconds.
MAX_ITER = 30
# A light L2 penalty (on standardised features, MLlib's default): it keeps the problem
# strongly convex, so L-BFGS converges in few iterations, and bounded when classes are
# separable (unpenalised weights would grow for ever, every iteration spent growing them).
REG_PARAM = 1e-3
# Training rows per label the fits use at most (a seeded stratified sample above it): the
# full features' fit costs ~rows x 1280 x labels multiply-adds per iteration, so Fruits-360's
# ~490 Training images per label would make it ~5x dearer for a figure that only compares
# the PCA's space with the full one (both fitted on the same rows). None: every row.
MAX_TRAIN_PER_LABEL: int | None = 100
SAMPLE_SEED = 42

_LABEL_INDEX = "_label_index"
_VECTOR = "_vector"
_PREDICTION = "_prediction"


def curve_ks(k: int) -> list[int]:
    """The k of the accuracy curve: :data:`CURVE_KS` below ``k``, then ``k``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [j for j in CURVE_KS if j < k] + [k]


def absent_reason(by_split_label: Mapping[str, Mapping[str, int]]) -> str | None:
    """Why separability cannot be measured on data with these valid-row counts, or None."""
    train = {label: n for label, n in (by_split_label.get(TRAIN_SPLIT) or {}).items() if n > 0}
    test = {label: n for label, n in (by_split_label.get(TEST_SPLIT) or {}).items() if n > 0}
    splits = sorted(s for s, labels in by_split_label.items() if any(labels.values()))
    if not test:
        return (
            f"no {TEST_SPLIT} split (the data's splits: {', '.join(splits) or 'none'}): "
            f"Test accuracy needs valid images under both {TRAIN_SPLIT}/ and {TEST_SPLIT}/, "
            "as in Fruits-360's layout"
        )
    if not train:
        return (
            f"no {TRAIN_SPLIT} rows (the data's splits: {', '.join(splits)}): "
            "there is nothing to fit the classifier on"
        )
    if len(train) == 1:
        return (
            f"a single label in {TRAIN_SPLIT} ({next(iter(train))}): there is nothing to separate"
        )
    return None


def split_label_counts(
    df: DataFrame, *, split_col: str = "split", label_col: str = "label"
) -> dict[str, dict[str, int]]:
    """``{split: {label: rows}}`` of ``df`` (one aggregation)."""
    counts: dict[str, dict[str, int]] = {}
    for row in df.groupBy(split_col, label_col).count().collect():
        counts.setdefault(row[split_col], {})[row[label_col]] = row["count"]
    return counts


def index_labels(
    df: DataFrame, labels: Sequence[str], *, label_col: str = "label", keep_unseen: bool = False
) -> DataFrame:
    """``df`` with ``_label_index``: the position of ``label_col`` in ``labels``.

    With ``keep_unseen`` a label not in ``labels`` gets ``len(labels)``, a class no model
    fitted on ``labels`` predicts (for Test rows: they count as wrong); without it such a
    label is an error (for Training rows, which define ``labels``).
    """
    indexer = StringIndexerModel.from_labels(
        list(labels),
        inputCol=label_col,
        outputCol=_LABEL_INDEX,
        handleInvalid="keep" if keep_unseen else "error",
    )
    return indexer.transform(df)


def fit_classifier(
    train: DataFrame,
    vector: Column,
    *,
    max_iter: int = MAX_ITER,
    reg_param: float = REG_PARAM,
) -> LogisticRegressionModel:
    """MLlib's multinomial logistic regression of ``_label_index`` on ``vector`` (a Vector
    column expression) over the rows of ``train`` (see :func:`index_labels`)."""
    classifier = LogisticRegression(
        featuresCol=_VECTOR,
        labelCol=_LABEL_INDEX,
        predictionCol=_PREDICTION,
        family="multinomial",
        maxIter=max_iter,
        regParam=reg_param,
        elasticNetParam=0.0,  # L2 only: L-BFGS (an L1 part would need OWL-QN)
    )
    return classifier.fit(train.select(vector.alias(_VECTOR), _LABEL_INDEX))


def accuracy_on(model: LogisticRegressionModel, test: DataFrame, vector: Column) -> float:
    """Fraction of ``test``'s rows whose predicted class is their ``_label_index``."""
    predicted = model.transform(test.select(vector.alias(_VECTOR), _LABEL_INDEX))
    evaluator = MulticlassClassificationEvaluator(
        labelCol=_LABEL_INDEX, predictionCol=_PREDICTION, metricName="accuracy"
    )
    return float(evaluator.evaluate(predicted))


def pca_vector(pca_col: str, j: int) -> Column:
    """The first ``j`` components of an ``array<double>`` projection, as a Vector."""
    return array_to_vector(F.slice(F.col(pca_col), 1, j))


def measure(
    df: DataFrame,
    *,
    k: int,
    by_split_label: Mapping[str, Mapping[str, int]] | None = None,
    features_col: str = "features",
    pca_col: str = "pca",
    split_col: str = "split",
    label_col: str = "label",
    max_iter: int = MAX_ITER,
    reg_param: float = REG_PARAM,
    max_train_per_label: int | None = MAX_TRAIN_PER_LABEL,
) -> dict[str, Any]:
    """The ``separability`` section of ``metrics.json`` for ``df`` (rows with a split, a
    label, the features and their k-dim PCA projection).

    ``by_split_label`` (valid rows per split and label, as the job counted them) saves
    an aggregation; without it the rows are counted here. Labels with more than
    ``max_train_per_label`` Training rows are sampled down to about that many
    (``DataFrame.sampleBy``, seeded). Returns ``{"absent": why}`` when the data cannot say
    (see :func:`absent_reason`).
    """
    if max_train_per_label is not None and max_train_per_label < 1:
        raise ValueError(f"max_train_per_label must be >= 1 or None, got {max_train_per_label}")
    started = time.perf_counter()
    counts = by_split_label or split_label_counts(df, split_col=split_col, label_col=label_col)
    reason = absent_reason(counts)
    if reason is not None:
        return {"absent": reason}
    train_counts = {lab: n for lab, n in counts[TRAIN_SPLIT].items() if n > 0}
    test_counts = {lab: n for lab, n in counts[TEST_SPLIT].items() if n > 0}
    labels = sorted(train_counts)
    test_rows = sum(test_counts.values())
    majority = max(labels, key=lambda lab: (train_counts[lab], lab))

    # Read (and project) once for every fit; each fit also caches its own training blocks.
    rows = (
        df.filter(F.col(split_col).isin(TRAIN_SPLIT, TEST_SPLIT))
        .select(split_col, label_col, features_col, pca_col)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        train_rows = rows.filter(F.col(split_col) == TRAIN_SPLIT)
        fractions = {
            lab: min(1.0, (max_train_per_label or n) / n) for lab, n in train_counts.items()
        }
        sampled = min(fractions.values()) < 1.0
        if sampled:
            train_rows = train_rows.sampleBy(label_col, fractions, seed=SAMPLE_SEED)
        train = index_labels(train_rows, labels)
        train_used = train.count() if sampled else sum(train_counts.values())
        test = index_labels(rows.filter(F.col(split_col) == TEST_SPLIT), labels, keep_unseen=True)

        def score(vector: Column) -> tuple[float, int, int]:
            model = fit_classifier(train, vector, max_iter=max_iter, reg_param=reg_param)
            accuracy = accuracy_on(model, test, vector)
            return accuracy, model.summary.totalIterations, model.numFeatures

        ks = curve_ks(k)
        curve = [score(pca_vector(pca_col, j)) for j in ks]
        full_accuracy, full_iterations, dim = score(array_to_vector(F.col(features_col)))
    finally:
        rows.unpersist()
    return {
        "k": k,
        "accuracy_at_k": curve[-1][0],
        "feature_dim": dim,
        "accuracy_full": full_accuracy,
        "ks": ks,
        "accuracy_by_k": [c[0] for c in curve],
        "chance": test_counts.get(majority, 0) / test_rows,
        "train_rows": train_used,
        "train_rows_available": sum(train_counts.values()),
        "max_train_per_label": max_train_per_label,
        "test_rows": test_rows,
        "test_rows_unseen_label": sum(n for lab, n in test_counts.items() if lab not in labels),
        "labels": labels,
        "classifier": {
            "model": "pyspark.ml.classification.LogisticRegression",
            "family": "multinomial",
            "max_iter": max_iter,
            "reg_param": reg_param,
            "elastic_net_param": 0.0,
            "iterations_by_k": [c[1] for c in curve],
            "iterations_full": full_iterations,
        },
        "seconds": round(time.perf_counter() - started, 3),
    }


def measure_or_absent(df: DataFrame, **kwargs: Any) -> dict[str, Any]:
    """:func:`measure`, but a failure is the section's ``absent`` reason, never the run's:
    the job's outputs do not depend on this measurement."""
    try:
        return measure(df, **kwargs)
    except Exception as exc:  # a side measurement must not fail the run
        log.warning("class separability not measured: %s", exc, exc_info=True)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"absent": f"the measurement failed: {type(exc).__name__}: {first_line[:300]}"}
