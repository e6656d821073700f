"""Fixtures of the Spark job tests: one local Spark session, generated image folders."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import pytest

from include.datasets.sample import generate_sample_dataset

# Small images keep MobileNetV2 fast in tests (it accepts >= 32 px); one slow test runs
# the shipped job through spark-submit.
TEST_IMAGE_SIZE = 32

# The valid images the bad-input dataset adds to the generated ones.
EXTRA_VALID = {
    "Training/Plum/grayscale.jpg",
    "Training/Pear/cmyk.jpg",
    "Training/Orange/alpha.png",
    "Training/Apple Red 1/pomme rouge é.jpg",
    "Training/Banana/UPPER CASE.JPG",
}
# The bad files it adds, with the start of the reason the job must give.
EXPECTED_BAD = {
    "Training/Kiwi/truncated.jpg": "cannot decode",
    "Test/Banana/empty.jpg": "empty file",
    "Training/Lemon/notes.jpg": "not an image",
}


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession built by the job's own builder, shared by the session."""
    from spark_jobs.session import build_session

    session = build_session(
        master="local[2]",
        app_name="fruits-features-tests",
        extra_conf={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    # py4j logs from __del__ at interpreter exit, after pytest closed the log streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)


def _jpeg_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def add_bad_inputs(root: Path) -> None:
    """Add every awkward kind of file the job must cope with to a Fruits-360 folder."""
    from PIL import Image

    base = Image.open(root / "Training" / "Kiwi" / "0_100.jpg").convert("RGB")
    good = _jpeg_bytes(base)
    (root / "Training/Kiwi/truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "Test/Banana/empty.jpg").write_bytes(b"")
    (root / "Training/Lemon/notes.jpg").write_text("this is a text file, not a JPEG\n")
    base.convert("L").save(root / "Training/Plum/grayscale.jpg", quality=90)
    base.convert("CMYK").save(root / "Training/Pear/cmyk.jpg", quality=90)
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "Training/Orange/alpha.png")
    (root / "Training/Apple Red 1/pomme rouge é.jpg").write_bytes(good)
    (root / "Training/Banana/UPPER CASE.JPG").write_bytes(good)
    # Ignored, not counted: not an image extension, hidden.
    (root / "Training/Kiwi/readme.txt").write_text("not an image\n")
    (root / "Training/Kiwi/.DS_Store").write_bytes(b"\x00\x01")


@pytest.fixture(scope="session")
def bad_dataset(tmp_path_factory) -> Path:
    """8 labels x (2 Training + 1 Test) generated JPEGs plus every bad-input kind."""
    root = tmp_path_factory.mktemp("bad-inputs") / "fruits-360"
    generate_sample_dataset(root, per_label=2, test_per_label=1)
    add_bad_inputs(root)
    return root


@pytest.fixture(scope="session")
def packed_bad_dataset(bad_dataset, tmp_path_factory) -> Path:
    """The same images, packed into parquet shards (small shards to get several)."""
    from spark_jobs.packing import pack_images

    dest = tmp_path_factory.mktemp("packed") / "packed"
    pack_images(bad_dataset, dest, target_shard_bytes=40_000)
    return dest


@pytest.fixture
def copy_of(tmp_path):
    """Copy a read-only dataset folder into the test's tmp_path."""

    def _copy(src: Path) -> Path:
        dest = tmp_path / src.name
        shutil.copytree(src, dest)
        return dest

    return _copy


@pytest.fixture(scope="session")
def converted_models(tmp_path_factory):
    """``make(runtime, weights="none", image_size=TEST_IMAGE_SIZE, weights_file=None)``:
    the job's converted model file, converted once per session (in-process: fast)."""
    from spark_jobs.runtimes import convert

    folder = tmp_path_factory.mktemp("models")
    made: dict[tuple, Path] = {}

    def make(runtime="litert", weights="none", image_size=TEST_IMAGE_SIZE, weights_file=None):
        key = (runtime, weights, image_size, str(weights_file))
        if key not in made:
            dest = folder / f"{len(made)}-{runtime}-{image_size}.zip"
            convert(runtime, weights, image_size, dest, weights_file)
            made[key] = dest
        return made[key]

    return make


@pytest.fixture(scope="session")
def other_weights_file(tmp_path_factory) -> Path:
    """A MobileNetV2 weights file other than --weights none's (another seed)."""
    import keras

    from spark_jobs.runtimes import build_keras_model

    path = tmp_path_factory.mktemp("weights") / "seed7.weights.h5"
    keras.utils.set_random_seed(7)
    build_keras_model(TEST_IMAGE_SIZE, None).save_weights(str(path))
    return path
