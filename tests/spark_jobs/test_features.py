"""Decoding and featurising single images (no Spark), and resolving --weights (keras)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from spark_jobs import FEATURE_DIM, runtimes
from spark_jobs import features as feat
from tests.spark_jobs.conftest import EXPECTED_BAD, EXTRA_VALID, TEST_IMAGE_SIZE


@pytest.mark.parametrize("rel", sorted(EXTRA_VALID))
def test_decode_handles_every_valid_kind(bad_dataset, rel):
    array = feat.decode_image((bad_dataset / rel).read_bytes(), TEST_IMAGE_SIZE)
    assert array.shape == (TEST_IMAGE_SIZE, TEST_IMAGE_SIZE, 3)
    assert array.dtype == np.float32
    assert array.min() >= 0.0
    assert array.max() <= 255.0


@pytest.mark.parametrize(("rel", "reason"), sorted(EXPECTED_BAD.items()))
def test_decode_rejects_every_bad_kind_with_a_reason(bad_dataset, rel, reason):
    with pytest.raises(feat.BadImageError, match=reason):
        feat.decode_image((bad_dataset / rel).read_bytes(), TEST_IMAGE_SIZE)


def test_decode_rejects_none_content():
    with pytest.raises(feat.BadImageError, match="empty"):
        feat.decode_image(None, TEST_IMAGE_SIZE)


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return runtimes.build_keras_model(TEST_IMAGE_SIZE)


@pytest.fixture(scope="module")
def tiny_predictor(tiny_model):
    return runtimes.make_predictor("keras", tiny_model.get_weights(), TEST_IMAGE_SIZE, 1)


def test_featurize_contents_marks_bad_rows_and_never_emits_zero_vectors(
    bad_dataset, tiny_predictor
):
    rels = [
        "Training/Kiwi/0_100.jpg",
        "Test/Banana/empty.jpg",
        "Training/Plum/grayscale.jpg",
        "Training/Lemon/notes.jpg",
    ]
    out = feat.featurize_contents(
        tiny_predictor,
        [(bad_dataset / r).read_bytes() for r in rels],
        TEST_IMAGE_SIZE,
        batch_size=1,
    )
    assert list(out["error"].isna()) == [True, False, True, False]
    assert out["features"][1] is None
    assert out["features"][3] is None
    for i in (0, 2):
        vector = out["features"][i]
        assert vector.shape == (FEATURE_DIM,)
        assert np.abs(vector).sum() > 0
    # Batching does not change the numbers.
    again = feat.featurize_contents(
        tiny_predictor, [(bad_dataset / rels[0]).read_bytes()] * 3, TEST_IMAGE_SIZE, 2
    )
    np.testing.assert_allclose(again["features"][2], out["features"][0], rtol=1e-4, atol=1e-5)


def test_null_contents_are_skipped_not_decoded_nor_counted_bad(bad_dataset, tiny_predictor):
    """The feature cache's reused images reach the UDF as null: no features, no error."""
    good = (bad_dataset / "Training/Kiwi/0_100.jpg").read_bytes()
    calls: list[int] = []

    def counting(batch):
        calls.append(len(batch))
        return tiny_predictor(batch)

    out = feat.featurize_contents(counting, [None, good, None, b""], TEST_IMAGE_SIZE, 8)
    assert calls == [1]  # only the one real image went through the model
    assert list(out["features"].isna()) == [True, False, True, True]
    assert list(out["error"].isna()) == [True, True, True, False]
    assert out["features"][1].shape == (FEATURE_DIM,)
    assert out["error"][3].startswith("empty file")  # an empty file is still a bad file


def test_preprocessing_is_mobilenet_v2s_bit_for_bit():
    """The TensorFlow-free preprocessing equals Keras's preprocess_input exactly."""
    from keras.applications.mobilenet_v2 import preprocess_input

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (128, 128, 128)).save(buf, format="PNG")
    decoded = feat.decode_image(buf.getvalue(), TEST_IMAGE_SIZE)
    np.testing.assert_allclose(runtimes.preprocess(decoded), 128 / 127.5 - 1, atol=1e-6)
    pixels = np.random.default_rng(3).integers(0, 256, (4, 9, 9, 3)).astype(np.float32)
    ours = runtimes.preprocess(pixels)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, preprocess_input(pixels.copy()))
    assert pixels.max() > 1  # the input is not modified in place


def test_weights_none_is_deterministic_and_flagged_not_meaningful(spark):
    first, info = feat.load_weights(spark, "none", TEST_IMAGE_SIZE)
    second, _ = feat.load_weights(spark, "none", TEST_IMAGE_SIZE)
    assert info.meaningful is False
    assert "not meaningful" in info.note
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_weights_file_round_trip(spark, tmp_path, tiny_model):
    path = tmp_path / "mobilenet_v2.weights.h5"
    tiny_model.save_weights(str(path))
    weights, info = feat.load_weights(spark, str(path), TEST_IMAGE_SIZE)
    assert info.source == str(path)
    assert info.meaningful is True
    assert all(np.array_equal(a, b) for a, b in zip(weights, tiny_model.get_weights(), strict=True))


def test_missing_weights_file_fails_clearly(spark, tmp_path):
    with pytest.raises(feat.WeightsError, match="could not load MobileNetV2 weights"):
        feat.load_weights(spark, str(tmp_path / "absent.weights.h5"), TEST_IMAGE_SIZE)


def test_wrong_weights_file_fails_clearly(spark, tmp_path):
    path = tmp_path / "other.weights.h5"
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(str(path))
    with pytest.raises(feat.WeightsError, match="could not load MobileNetV2 weights"):
        feat.load_weights(spark, str(path), TEST_IMAGE_SIZE)


def test_partially_loaded_weights_file_fails_instead_of_keeping_random_layers(
    spark, tmp_path, monkeypatch
):
    """Keras only warns when parts of a file match no layer; the job must refuse it."""
    import warnings

    import keras

    path = tmp_path / "mobilenet.weights.h5"
    runtimes.build_keras_model(TEST_IMAGE_SIZE, None).save_weights(str(path))

    def partial_load(self, filepath, *args, **kwargs):
        warnings.warn(
            "Skipping nested container at 'x': no matching group found in the saved file. "
            "Affected layers will retain their freshly-initialized weights.",
            UserWarning,
            stacklevel=2,
        )

    monkeypatch.setattr(keras.Model, "load_weights", partial_load)
    with pytest.raises(feat.WeightsError, match="could not load MobileNetV2 weights"):
        feat.load_weights(spark, str(path), TEST_IMAGE_SIZE)


def test_imagenet_offline_fails_with_advice_and_no_fallback(spark, monkeypatch):
    def offline(url, *args, **kwargs):
        raise OSError(
            f"URL fetch failure on {url}: [Errno -3] Temporary failure in name resolution"
        )

    # Keras fetches the weights with keras.utils.get_file; make it fail as offline does.
    import keras.src.applications.mobilenet_v2 as mobilenet_v2_module

    monkeypatch.setattr(mobilenet_v2_module.file_utils, "get_file", offline)
    with pytest.raises(feat.WeightsError, match="offline") as excinfo:
        feat.load_weights(spark, "imagenet", TEST_IMAGE_SIZE)
    assert "--weights none" in str(excinfo.value)
    assert "export-weights" in str(excinfo.value)


def test_export_weights_requires_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        feat.export_weights(tmp_path / "weights.bin")


def test_weights_digest_identifies_the_weights(tiny_model):
    weights = tiny_model.get_weights()
    digest = feat.weights_digest(weights)
    assert digest == feat.weights_digest([w.copy() for w in weights])
    changed = [w.copy() for w in weights]
    changed[-1][0] += 1.0
    assert feat.weights_digest(changed) != digest
