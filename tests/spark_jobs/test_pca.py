"""PCA: both solvers against numpy, the moments merge, bad features, choosing k."""

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


@pytest.mark.parametrize("solver", pca.SOLVERS)
def test_spark_pca_matches_numpy_on_centred_features(correlated, solver):
    x, df = correlated
    out, result = pca.fit_transform(df, target_variance=0.9, solver=solver)
    assert result.solver == solver
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


def test_solvers_give_the_same_curve_and_projection(correlated):
    _, df = correlated
    outs = {}
    for solver in pca.SOLVERS:
        out, result = pca.fit_transform(df, fixed_k=5, solver=solver)
        outs[solver] = (result, np.array([r.pca for r in out.orderBy("id").collect()]))
    (gram, gram_proj), (mllib, mllib_proj) = outs["gram"], outs["mllib"]
    np.testing.assert_allclose(gram.explained_variance, mllib.explained_variance, atol=1e-12)
    np.testing.assert_allclose(gram.mean, mllib.mean, rtol=1e-12)
    # Same signs too: both go through fix_signs.
    np.testing.assert_allclose(gram_proj, mllib_proj, atol=1e-8)


def test_fewer_rows_than_dimensions_gives_n_components(spark):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 10))
    df = spark.createDataFrame([(row.tolist(),) for row in x], "features array<double>")
    curves = [
        pca.fit_transform(df, fixed_k=2, solver=solver)[1].explained_variance
        for solver in pca.SOLVERS
    ]
    assert [len(c) for c in curves] == [6, 6]
    np.testing.assert_allclose(curves[0], curves[1], atol=1e-12)
    # Six centred rows span at most five dimensions.
    assert curves[0][-1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("partitions", "fan_in"), [(1, 8), (3, 8), (9, 2), (17, 3)])
def test_moments_are_the_same_for_any_partitioning_and_chunking(spark, partitions, fan_in):
    rng = np.random.default_rng(partitions)
    x = rng.normal(size=(40, 7)) * [1, 2, 3, 4, 5, 6, 7] + 3.0
    df = spark.createDataFrame([(row.tolist(),) for row in x], "features array<double>")
    # Chunks of 3 rows fold several times per partition; 9 and 17 partials go through
    # two and three levels of the tree (some partitions of a level are empty).
    moments = pca.feature_moments(df.repartition(partitions), chunk_rows=3, fan_in=fan_in)
    assert moments.n == 40
    np.testing.assert_allclose(moments.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.scatter / 39, np.cov(x, rowvar=False), rtol=1e-10)


def test_partials_are_merged_on_executors_under_a_small_max_result_size(spark):
    # 40 partitions of 512-wide vectors: one partial each is ~1 MiB (the upper triangle of
    # the scatter), 42 MiB in all, over an 8 MiB spark.driver.maxResultSize. At d = 1280
    # a partial is ~6.3 MiB: the default 1 GiB is passed at ~160 partitions.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 512)) + 5.0
    df = spark.createDataFrame([(r.tolist(),) for r in x], "features array<double>")
    df = df.repartition(40).cache()
    assert df.count() == 400
    conf = spark.sparkContext._jsc.sc().conf()  # the live SparkConf the scheduler reads
    previous = conf.get("spark.driver.maxResultSize", "1g")
    conf.set("spark.driver.maxResultSize", "8m")
    try:
        # No tree (fan-in above the partition count): every partial goes to the driver.
        with pytest.raises(Exception, match="maxResultSize"):
            pca.feature_moments(df, fan_in=1000)
        moments = pca.feature_moments(df)  # the default tree: 40 -> 5 partials
    finally:
        conf.set("spark.driver.maxResultSize", previous)
        df.unpersist()
    assert moments.n == 400
    np.testing.assert_allclose(moments.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.scatter / 399, np.cov(x, rowvar=False), atol=1e-10)


def test_fan_in_must_merge_something(spark):
    df = spark.createDataFrame([([1.0, 2.0],)], "features array<double>")
    with pytest.raises(ValueError, match="fan_in must be >= 2"):
        pca.feature_moments(df, fan_in=1)


def test_fold_and_merge_are_stable_far_from_the_origin():
    # Features offset by 1e8 with unit spread: sum(x^2) - n * mean^2 would lose every
    # significant digit in float64; the shifted fold and the pairwise merge keep them.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 4)) + 1e8
    upper = np.triu_indices(4)
    counts, means, scatters = [], [], []
    for partition in np.array_split(x, [1, 250, 600]):
        fold = pca.ShiftedFold()
        for chunk in np.array_split(partition, 3):
            if len(chunk):
                fold.add(chunk)
        moments = fold.moments()
        counts.append(moments.n)
        means.append(moments.mean)
        scatters.append(moments.scatter[upper])
    merged = pca.merge_partials(4, np.array(counts), means, scatters)
    assert merged.n == 1000
    np.testing.assert_allclose(merged.mean - 1e8, x.mean(axis=0) - 1e8, atol=1e-6)
    expected = np.cov(x - 1e8, rowvar=False)
    np.testing.assert_allclose(merged.scatter / 999, expected, rtol=1e-6, atol=1e-6)


def test_moments_of_no_rows_is_refused(spark):
    df = spark.createDataFrame([], "features array<float>")
    with pytest.raises(pca.PcaInputError, match="at least 2"):
        pca.fit_transform(df, target_variance=0.9)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]], "identical"),
        ([[1.0, 2.0], [1.0, 2.0, 3.0], [0.0, 1.0]], "differ in length"),
        ([[1.0, 2.0], [float("nan"), 2.0], [0.0, 1.0]], "NaN"),
        ([[1.0, 2.0], None, [0.0, 1.0]], "null"),
        ([[1.0, 2.0], [None, 2.0], [0.0, 1.0]], "null value"),
    ],
    ids=["no-variance", "ragged", "nan", "null-vector", "null-value"],
)
def test_unusable_features_are_refused_clearly(spark, rows, message):
    # One partition, so the ragged rows meet in one worker; the driver re-raises.
    df = spark.createDataFrame([(r,) for r in rows], "features array<double>").coalesce(1)
    with pytest.raises(pca.PcaInputError, match=message):
        pca.fit_transform(df, target_variance=0.9)


def test_ragged_vectors_across_partitions_are_refused(spark):
    def one_partition(rows):
        return spark.createDataFrame([(r,) for r in rows], "features array<double>").coalesce(1)

    # Each partition is consistent; only the driver sees both lengths.
    df = one_partition([[1.0, 2.0], [3.0, 1.0]]).union(one_partition([[1.0, 2.0, 3.0], [0.0] * 3]))
    assert df.rdd.getNumPartitions() == 2
    with pytest.raises(pca.PcaInputError, match=r"differ in length: \[2, 3\]"):
        pca.fit_transform(df, target_variance=0.9)


def test_component_signs_are_fixed():
    components = np.array([[0.1, -0.9], [-0.8, 0.2], [0.3, 0.1]])
    np.testing.assert_array_equal(
        pca.fix_signs(components), [[-0.1, 0.9], [0.8, -0.2], [-0.3, -0.1]]
    )


def test_unknown_solver_is_refused(correlated):
    with pytest.raises(ValueError, match="solver"):
        pca.fit_transform(correlated[1], fixed_k=2, solver="svd")
