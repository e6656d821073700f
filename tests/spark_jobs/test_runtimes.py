"""The model runtimes without Spark: parity with Keras, the model file and its refusals."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from spark_jobs import FEATURE_DIM, runtimes
from spark_jobs import features as feat
from tests.spark_jobs.conftest import TEST_IMAGE_SIZE

FAST = runtimes.CONVERTED_RUNTIMES
PARITY_RTOL = 1e-4  # max |diff| / max |keras|, the bound


def _keras_predictor(weights: str, weights_file=None):
    model = runtimes.load_keras_model(weights, TEST_IMAGE_SIZE, weights_file)
    return runtimes.make_predictor("keras", model.get_weights(), TEST_IMAGE_SIZE, 1)


def _fast_predictor(path, runtime, spec):
    model_bytes = runtimes.check_model(path.read_bytes(), spec, origin=str(path))
    return runtimes.make_predictor(runtime, model_bytes, TEST_IMAGE_SIZE, 1)


def _contents(dataset):
    """13 files, one of them truncated: a last batch smaller than the others, a bad row."""
    paths = [*sorted(dataset.rglob("*.jpg"))[:12], dataset / "Training/Kiwi/truncated.jpg"]
    return [p.read_bytes() for p in paths]


@pytest.mark.slow  # Keras against each converted runtime: 15-50 s each
@pytest.mark.parametrize("runtime", FAST)
@pytest.mark.parametrize("weights", ["none", "file"])
def test_fast_runtime_gives_kerass_features(
    runtime, weights, converted_models, other_weights_file, bad_dataset
):
    weights_file = other_weights_file if weights == "file" else None
    source = str(other_weights_file) if weights_file else "none"
    path = converted_models(runtime, source, weights_file=weights_file)
    spec = runtimes.ModelSpec(
        runtime, source, runtimes.weights_key(source, weights_file), TEST_IMAGE_SIZE
    )
    contents = _contents(bad_dataset)
    expected = feat.featurize_contents(_keras_predictor(source, weights_file), contents, 32, 4)
    got = feat.featurize_contents(_fast_predictor(path, runtime, spec), contents, 32, 4)
    assert list(got["error"].isna()) == list(expected["error"].isna())
    ok = expected["error"].isna().to_numpy()
    assert ok.sum() >= 10
    keras_matrix = np.stack(expected["features"][ok])
    fast_matrix = np.stack(got["features"][ok])
    assert fast_matrix.shape == (ok.sum(), FEATURE_DIM)
    assert fast_matrix.dtype == np.float32
    relative = np.abs(fast_matrix - keras_matrix).max() / np.abs(keras_matrix).max()
    assert relative < PARITY_RTOL


@pytest.mark.slow  # two Keras models
def test_other_weights_give_other_features(converted_models, other_weights_file, bad_dataset):
    """The parity test could fail: two weights' features differ far beyond its bound."""
    contents = [p.read_bytes() for p in sorted(bad_dataset.glob("Training/*/0_*.jpg"))[:4]]
    a = feat.featurize_contents(_keras_predictor("none"), contents, 32, 4)
    b = feat.featurize_contents(
        _keras_predictor(str(other_weights_file), other_weights_file), contents, 32, 4
    )
    assert a["error"].isna().all()
    diff = np.abs(np.stack(a["features"]) - np.stack(b["features"])).max()
    assert diff / np.abs(np.stack(a["features"])).max() > 100 * PARITY_RTOL


def test_model_key_follows_weights_content_and_image_size(tmp_path, other_weights_file):
    copy = tmp_path / "renamed.weights.h5"
    copy.write_bytes(other_weights_file.read_bytes())
    key = runtimes.weights_key
    assert key(str(copy), copy) == key(str(other_weights_file), other_weights_file)
    changed = tmp_path / "changed.weights.h5"
    changed.write_bytes(other_weights_file.read_bytes() + b"\0")
    assert key(str(changed), changed) != key(str(copy), copy)
    specs = {
        runtimes.ModelSpec(rt, "none", key("none"), size).key for rt in FAST for size in (32, 224)
    }
    assert len(specs) == 4  # runtime and image size are part of the key


@pytest.fixture
def litert_none(converted_models):
    path = converted_models("litert", "none")
    spec = runtimes.ModelSpec("litert", "none", "none-seed0", TEST_IMAGE_SIZE)
    return path, spec


def test_model_file_records_what_it_was_made_from(litert_none):
    path, spec = litert_none
    manifest, model_bytes = runtimes.read_model_file(path.read_bytes(), origin="m")
    assert manifest["runtime"] == "litert"
    assert manifest["weights_key"] == "none-seed0"
    assert manifest["image_size"] == TEST_IMAGE_SIZE
    assert manifest["model_key"] == spec.key
    assert len(model_bytes) > 1_000_000


@pytest.mark.parametrize(
    ("spec_change", "message"),
    [
        ({"image_size": 64}, "image_size: model has 32, run asks 64"),
        ({"weights_key": "file-0123"}, "weights_key: model has 'none-seed0'"),
        ({"runtime": "onnx"}, "runtime: model has 'litert', run asks 'onnx'"),
    ],
)
def test_a_model_made_for_something_else_is_refused(litert_none, spec_change, message):
    path, spec = litert_none
    wanted = runtimes.ModelSpec(**{**spec.__dict__, **spec_change})
    with pytest.raises(runtimes.ModelError, match="convert it again") as excinfo:
        runtimes.check_model(path.read_bytes(), wanted, origin="s3://b/model.zip")
    assert message in str(excinfo.value)
    assert "s3://b/model.zip" in str(excinfo.value)


def test_a_damaged_model_is_refused(litert_none, tmp_path):
    path, spec = litert_none
    with zipfile.ZipFile(path) as archive:
        manifest = archive.read("model.json")
        model = bytearray(archive.read("model.tflite"))
    model[len(model) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("model.json", manifest)
        archive.writestr("model.tflite", bytes(model))
    with pytest.raises(runtimes.ModelError, match="damaged"):
        runtimes.check_model(damaged.read_bytes(), spec, origin="m")
    with pytest.raises(runtimes.ModelError, match="not a converted model"):
        runtimes.check_model(path.read_bytes()[:1000], spec, origin="m")
    with pytest.raises(runtimes.ModelError, match="not a converted model"):
        runtimes.check_model(b"not a zip at all", spec, origin="m")


def test_a_model_of_another_format_version_is_refused(litert_none, tmp_path):
    path, spec = litert_none
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("model.json"))
        model = archive.read("model.tflite")
    manifest["format"] = "fruits-mobilenet_v2/0"
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr("model.json", json.dumps(manifest))
        archive.writestr("model.tflite", model)
    with pytest.raises(runtimes.ModelError, match="another version of this job"):
        runtimes.check_model(old.read_bytes(), spec, origin="m")


@pytest.mark.parametrize("runtime", FAST)
def test_a_model_whose_bytes_are_not_a_network_fails_to_load(runtime, tmp_path):
    spec = runtimes.ModelSpec(runtime, "none", "none-seed0", TEST_IMAGE_SIZE)
    path = runtimes.write_model_file(tmp_path / "junk.zip", spec, b"\x00junk" * 100)
    model_bytes = runtimes.check_model(path.read_bytes(), spec, origin="m")
    with pytest.raises(runtimes.ModelError, match="not a loadable"):
        runtimes.make_predictor(runtime, model_bytes, TEST_IMAGE_SIZE, 1)


@pytest.mark.slow  # a child Python importing TensorFlow
def test_conversion_in_a_subprocess_reports_unusable_weights(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(runtimes.WeightsError, match="could not load MobileNetV2 weights"):
        runtimes.convert_in_subprocess("litert", str(bad), TEST_IMAGE_SIZE, tmp_path / "m.zip", bad)
    assert not (tmp_path / "m.zip").exists()
