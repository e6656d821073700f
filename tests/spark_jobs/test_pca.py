"""MLlib PCA: centring, the explained-variance curve against numpy, choosing k."""

from __future__ import annotations

import numpy as np
import pytest

from spark_jobs import pca


def test_choose_k_from_variance_target():
    curve = [0.5, 0.3, 0.15, 0.05]
    assert pca.choose_k(curve, target_variance=0.5) == 1
    assert pca.choose_k(curve, target_variance=0.8) == 2
    assert pca.choose_k(curve, target_variance=0.81) == 3
    assert pca.choose_k(curve, target_variance=0.95) == 3
    assert pca.choose_k(curve, target_variance=1.0) == 4


def test_choose_k_tolerates_float_summation():
    # 0.1 * 3 sums to 0.30000000000000004 and 0.7 + 0.2 + 0.1 to 0.9999999999999999.
    assert pca.choose_k([0.7, 0.2, 0.1], target_variance=1.0) == 3


def test_choose_k_fixed_is_capped_at_the_fitted_components():
    assert pca.choose_k([0.6, 0.4], fixed_k=1) == 1
    assert pca.choose_k([0.6, 0.4], fixed_k=50) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"target_variance": 0.9, "fixed_k": 2}, "exactly one"),
        ({"target_variance": 1.5}, "target_variance"),
        ({"fixed_k": 0}, "fixed_k"),
    ],
)
def test_choose_k_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pca.choose_k([0.6, 0.4], **kwargs)


def _numpy_pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centred = x - x.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    order = np.argsort(eigenvalues)[::-1]
    return eigenvalues[order] / eigenvalues.sum(), centred @ eigenvectors[:, order]


@pytest.fixture(scope="module")
def correlated(spark):
    rng = np.random.default_rng(0)
    # Not centred (offset 5) and strongly correlated: uncentred PCA would be visibly wrong.
    x = rng.normal(size=(120, 24)) @ rng.normal(size=(24, 24)) + 5.0
    df = spark.createDataFrame(
        [(i, row.astype(np.float32).tolist()) for i, row in enumerate(x)],
        "id int, features array<float>",
    )
    return np.array([r.features for r in df.orderBy("id").collect()], dtype=np.float64), df


def test_spark_pca_matches_numpy_on_centred_features(correlated):
    x, df = correlated
    out, result = pca.fit_transform(df, target_variance=0.9)
    expected_curve, expected_proj = _numpy_pca(x)
    np.testing.assert_allclose(result.explained_variance, expected_curve, atol=1e-9)
    assert result.k == pca.choose_k(expected_curve.tolist(), target_variance=0.9)
    assert 1 < result.k < x.shape[1]
    assert result.variance_at_k >= 0.9
    np.testing.assert_allclose(result.mean, x.mean(axis=0), rtol=1e-6)
    projected = np.array([r.pca for r in out.orderBy("id").collect()])
    assert projected.shape == (len(x), result.k)
    # Components are defined up to their sign.
    np.testing.assert_allclose(np.abs(projected), np.abs(expected_proj[:, : result.k]), atol=1e-6)


def test_fixed_k_projects_on_that_many_components(correlated):
    _, df = correlated
    out, result = pca.fit_transform(df, fixed_k=3)
    assert result.k == 3
    assert result.fixed_k == 3
    assert result.target_variance is None
    assert {len(r.pca) for r in out.select("pca").collect()} == {3}
    assert len(result.explained_variance) == 24  # the whole curve, not just k
    assert result.as_dict()["cumulative_variance"][-1] == pytest.approx(1.0)


def test_pca_needs_two_rows(spark):
    df = spark.createDataFrame([([1.0, 2.0],)], "features array<float>")
    with pytest.raises(pca.PcaInputError, match="at least 2"):
        pca.fit_transform(df, target_variance=0.9)
