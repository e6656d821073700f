"""Class separability: MLlib's multinomial logistic regression on generated, labelled rows,
checked with numpy arithmetic (no scikit-learn): separable classes, shuffled labels,
the accuracy itself, and the cases where the measurement is absent."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.ml.functions import array_to_vector
from pyspark.sql import functions as F

from spark_jobs import pca, separability

DIM = 8
LABELS = ("Apple", "Banana", "Kiwi", "Lemon")


def _rows(
    rng: np.random.Generator, per_label: dict[str, int], *, spread: float, split: str
) -> list[tuple[str, str, list[float]]]:
    """``per_label[label]`` rows of ``split``, around the label's own centre (one axis
    each, 10 apart) with Gaussian noise of ``spread``."""
    out = []
    for label, n in per_label.items():
        centre = np.zeros(DIM)
        centre[sorted(per_label).index(label) % DIM] = 10.0
        for _ in range(n):
            out.append((split, label, (centre + spread * rng.normal(size=DIM)).tolist()))
    return out


def _frame(spark, rows, *, k: int):
    """The job's shape after the PCA: split, label, features and their k-dim projection."""
    df = spark.createDataFrame(
        [(f"{s}/{lab}/{i}.jpg", s, lab, v) for i, (s, lab, v) in enumerate(rows)],
        "path string, split string, label string, features array<float>",
    )
    projected, _ = pca.fit_transform(df, fixed_k=k)
    return projected.persist()


def _dataset(seed: int, *, train: int, test: int, spread: float) -> list:
    rng = np.random.default_rng(seed)
    return _rows(rng, dict.fromkeys(LABELS, train), spread=spread, split="Training") + _rows(
        rng, dict.fromkeys(LABELS, test), spread=spread, split="Test"
    )


def test_curve_ks_are_the_fixed_ones_below_k_then_k():
    assert separability.curve_ks(232) == [2, 5, 10, 20, 50, 232]
    assert separability.curve_ks(50) == [2, 5, 10, 20, 50]
    assert separability.curve_ks(7) == [2, 5, 7]
    assert separability.curve_ks(2) == [2]
    assert separability.curve_ks(1) == [1]
    with pytest.raises(ValueError, match="k must be >= 1"):
        separability.curve_ks(0)


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ({"Training": {"Apple": 3, "Kiwi": 2}}, "no Test split (the data's splits: Training)"),
        ({"Training": {"Apple": 3, "Kiwi": 2}, "Test": {"Apple": 0}}, "no Test split"),
        ({"Training": {"Apple": 3}, "Validation": {"Apple": 1}}, "splits: Training, Validation"),
        ({}, "no Test split (the data's splits: none)"),
        ({"Test": {"Apple": 3, "Kiwi": 1}}, "no Training rows"),
        ({"Training": {"Apple": 3, "Kiwi": 0}, "Test": {"Apple": 1, "Kiwi": 1}}, "a single label"),
    ],
)
def test_absent_reasons(counts, reason):
    assert reason in separability.absent_reason(counts)


def test_present_when_both_splits_have_rows_of_two_labels():
    counts = {"Training": {"Apple": 3, "Kiwi": 2}, "Test": {"Kiwi": 1}}
    assert separability.absent_reason(counts) is None


@pytest.mark.slow  # MLlib fits
def test_perfectly_separable_classes_give_accuracy_one(spark):
    df = _frame(spark, _dataset(0, train=20, test=10, spread=0.1), k=3)

    got = separability.measure(df, k=3)

    assert got["accuracy_at_k"] == 1.0
    assert got["accuracy_full"] == 1.0
    assert got["ks"] == [2, 3]
    assert got["accuracy_by_k"][-1] == got["accuracy_at_k"]
    assert (got["train_rows"], got["test_rows"], got["test_rows_unseen_label"]) == (80, 40, 0)
    assert (got["train_rows_available"], got["max_train_per_label"]) == (80, 100)
    assert got["labels"] == sorted(LABELS)
    assert got["feature_dim"] == DIM
    assert got["chance"] == 0.25  # balanced Test: the most frequent label is a quarter
    assert got["classifier"]["family"] == "multinomial"
    assert got["classifier"]["max_iter"] == separability.MAX_ITER
    assert all(1 <= n <= separability.MAX_ITER for n in got["classifier"]["iterations_by_k"])
    assert got["seconds"] > 0


@pytest.mark.slow  # MLlib fits
def test_training_rows_past_the_cap_are_a_seeded_sample_per_label(spark):
    df = _frame(spark, _dataset(8, train=20, test=5, spread=0.1), k=2)

    got = separability.measure(df, k=2, max_train_per_label=5)
    again = separability.measure(df, k=2, max_train_per_label=5)

    # Each label's 20 rows kept with probability 1/4: 20 expected, sd ~3.9 in all.
    assert 6 <= got["train_rows"] <= 34
    assert (got["train_rows_available"], got["max_train_per_label"]) == (80, 5)
    assert again["train_rows"] == got["train_rows"]  # seeded
    assert got["accuracy_full"] == 1.0  # a few rows per label still separate these classes
    assert separability.measure(df, k=2, max_train_per_label=None)["train_rows"] == 80
    with pytest.raises(ValueError, match="max_train_per_label must be >= 1"):
        separability.measure(df, k=2, max_train_per_label=0)


@pytest.mark.slow  # MLlib fits
def test_shuffled_labels_give_about_chance(spark):
    rows = _dataset(1, train=100, test=100, spread=0.1)
    rng = np.random.default_rng(2)
    # Each split's labels permuted: the same counts (Test balanced), none tied to the features.
    shuffled = []
    for split in ("Training", "Test"):
        part = [r for r in rows if r[0] == split]
        labels = rng.permutation([lab for _, lab, _ in part])
        shuffled += [(s, str(lab), v) for (s, _, v), lab in zip(part, labels, strict=True)]
    df = _frame(spark, shuffled, k=4)

    got = separability.measure(df, k=4)

    # With balanced Test labels independent of the features, any classifier's accuracy is a
    # binomial proportion of mean 1/4 over the Test rows: allow 4 standard deviations.
    p, n = 1 / len(LABELS), got["test_rows"]
    tolerance = 4 * math.sqrt(p * (1 - p) / n)
    assert n == 400
    for accuracy in [*got["accuracy_by_k"], got["accuracy_full"]]:
        assert abs(accuracy - p) < tolerance, (accuracy, tolerance)
    # The same rows with their true labels are separable: the shuffle is what removed it.
    assert separability.measure(_frame(spark, rows, k=4), k=4)["accuracy_full"] == 1.0


@pytest.mark.slow  # MLlib fits
def test_accuracy_is_numpy_argmax_of_the_models_scores(spark):
    # Overlapping classes: the accuracy is neither chance nor 1, so a wrong count shows.
    df = _frame(spark, _dataset(3, train=30, test=30, spread=6.0), k=3)
    labels = sorted(LABELS)
    train = separability.index_labels(df.filter(F.col("split") == "Training"), labels)
    test = separability.index_labels(df.filter(F.col("split") == "Test"), labels)
    vector = array_to_vector(F.col("features"))

    model = separability.fit_classifier(train, vector)
    accuracy = separability.accuracy_on(model, test, vector)

    rows = test.select("features", "_label_index").collect()
    x = np.array([r.features for r in rows], dtype=np.float64)
    y = np.array([r._label_index for r in rows], dtype=np.int64)
    assert sorted(set(y)) == [0, 1, 2, 3]
    assert [labels.index(r.label) for r in test.select("label").collect()] == y.tolist()
    scores = x @ model.coefficientMatrix.toArray().T + model.interceptVector.toArray()
    expected = float(np.mean(np.argmax(scores, axis=1) == y))
    assert accuracy == pytest.approx(expected, abs=1e-12)
    assert 0.3 < accuracy < 0.95
    # The model's own predictions are the argmax of the same scores.
    predicted = model.transform(test.select(vector.alias("_vector"), "_label_index"))
    probabilities = np.array([r.probability.toArray() for r in predicted.collect()])
    assert (np.argmax(probabilities, axis=1) == np.argmax(scores, axis=1)).all()


@pytest.mark.slow  # MLlib fits
def test_a_test_label_without_training_rows_counts_as_wrong(spark):
    rng = np.random.default_rng(4)
    rows = _dataset(4, train=20, test=10, spread=0.1)
    rows += _rows(rng, {"Mango": 5}, spread=0.1, split="Test")  # never in Training

    got = separability.measure(_frame(spark, rows, k=4), k=4)

    assert got["labels"] == sorted(LABELS)
    assert (got["test_rows"], got["test_rows_unseen_label"]) == (45, 5)
    assert got["accuracy_full"] == pytest.approx(40 / 45)


def test_no_test_split_is_absent_with_its_reason(spark):
    rows = _dataset(5, train=5, test=0, spread=0.1)
    got = separability.measure(_frame(spark, rows, k=2), k=2)
    assert got == {
        "absent": "no Test split (the data's splits: Training): Test accuracy needs valid "
        "images under both Training/ and Test/, as in Fruits-360's layout"
    }


def test_a_single_label_is_absent_with_its_reason(spark):
    rng = np.random.default_rng(6)
    rows = _rows(rng, {"Kiwi": 6}, spread=1.0, split="Training")
    rows += _rows(rng, {"Kiwi": 3}, spread=1.0, split="Test")
    got = separability.measure(_frame(spark, rows, k=2), k=2)
    assert got == {"absent": "a single label in Training (Kiwi): there is nothing to separate"}


def test_a_failure_is_the_sections_reason_never_the_runs(spark):
    df = _frame(spark, _dataset(7, train=5, test=2, spread=0.1), k=2).drop("pca")

    got = separability.measure_or_absent(df, k=2)

    assert set(got) == {"absent"}
    assert got["absent"].startswith("the measurement failed: AnalysisException")
    assert "pca" in got["absent"]
