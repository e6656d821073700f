"""MobileNetV2 featurisation: weights loaded once on the driver, one model per Python worker.

The driver resolves ``--weights`` (``imagenet`` | ``none`` | a file path or ``s3://`` URI),
builds the model once and broadcasts ``model.get_weights()`` (~9 MB). Each Python worker
builds the architecture once, sets the broadcast weights and caches the model in this
module (``_WORKER_MODEL``): workers are reused across tasks, so the model is not rebuilt
per task or per batch. This module must be shipped to executors (``--py-files``) for that
cache to live at module level.

Produce a weights file for machines without internet (EMR nodes need not download)::

    python -m spark_jobs.features export-weights mobilenet_v2.weights.h5
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from spark_jobs import FEATURE_DIM

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import Column, SparkSession

FEATURES_SCHEMA = "features array<float>, error string"


class WeightsError(RuntimeError):
    """The requested weights could not be loaded (offline, missing or incompatible file)."""


class BadImageError(ValueError):
    """An input file that cannot be decoded as an image; the message is the reason."""


@dataclass(frozen=True)
class WeightsInfo:
    """What metrics.json records about the weights used."""

    source: str
    meaningful: bool
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "meaningful": self.meaningful, "note": self.note}


def build_model(image_size: int, weights: str | None = None):
    """MobileNetV2 without its classifier, average-pooled: ``(n, s, s, 3) -> (n, 1280)``."""
    from keras.applications import MobileNetV2

    return MobileNetV2(
        input_shape=(image_size, image_size, 3),
        include_top=False,
        pooling="avg",
        weights=weights,
    )


def load_weights(
    spark: SparkSession, source: str, image_size: int
) -> tuple[list[np.ndarray], WeightsInfo]:
    """Resolve ``--weights`` on the driver; never falls back from one source to another."""
    if source == "imagenet":
        try:
            model = build_model(image_size, "imagenet")
        except Exception as exc:  # keras raises plain Exception subclasses for URL errors
            raise WeightsError(
                "could not load the ImageNet weights (Keras downloads them on first use; "
                f"this machine looks offline: {exc}). Pass --weights with a weights file "
                "(local path or s3:// URI, made once with `python -m spark_jobs.features "
                "export-weights mobilenet_v2.weights.h5` on a machine with internet), or "
                "--weights none for a test run with random weights."
            ) from exc
        info = WeightsInfo("imagenet", True, "Keras ImageNet weights, loaded on the driver")
    elif source == "none":
        import keras

        # A fixed seed: the same random network on every run, so reruns are comparable.
        keras.utils.set_random_seed(0)
        model = build_model(image_size, None)
        info = WeightsInfo(
            "none",
            False,
            "random initialisation (seed 0): for tests and offline demos only, "
            "features and PCA are not meaningful",
        )
    else:
        model = build_model(image_size, None)
        with tempfile.TemporaryDirectory(prefix="fruits-weights-") as tmp:
            from spark_jobs.io import copy_to_local, qualify

            local = Path(tmp) / Path(source.rstrip("/")).name
            try:
                copy_to_local(spark, qualify(source), local)
                with warnings.catch_warnings():
                    # Keras only *warns* when parts of a file match no layer ("affected layers
                    # will retain their freshly-initialized weights"): a partial load would
                    # give silently half-random features, so it fails like a wrong file.
                    warnings.filterwarnings("error", message=".*freshly-initialized.*")
                    model.load_weights(str(local))
            except Exception as exc:
                raise WeightsError(
                    f"could not load MobileNetV2 weights from {source}: {exc}. Expected a "
                    "Keras weights file (*.weights.h5) of MobileNetV2(include_top=False), "
                    "e.g. made with `python -m spark_jobs.features export-weights`."
                ) from exc
        info = WeightsInfo(source, True, "weights file loaded on the driver")
    return model.get_weights(), info


# --- executor side ------------------------------------------------------------------

_WORKER_MODEL: Any = None
_WORKER_MODEL_KEY: tuple[int, str] | None = None


def weights_digest(weights: Sequence[np.ndarray]) -> str:
    """A content hash of the weights (~10 ms for MobileNetV2's 9 MB)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in weights:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def configure_tf_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` intra-op threads and one inter-op thread.

    Spark already runs one task per core; TF's default (all cores per process) makes the
    tasks fight over the cores. Only takes effect before TF initialises in this process;
    a reused worker keeps its first setting.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TF already initialised in this (reused) worker: settings are fixed


def _worker_model(image_size: int, weights: Broadcast, digest: str, threads: int):
    global _WORKER_MODEL, _WORKER_MODEL_KEY
    key = (image_size, digest)
    if key != _WORKER_MODEL_KEY:
        configure_tf_threads(threads)
        if _WORKER_MODEL is not None:
            import keras

            # A reused worker serving a new job: free the previous job's graph first.
            _WORKER_MODEL = None
            keras.backend.clear_session()
        model = build_model(image_size, None)
        model.set_weights(weights.value)
        _WORKER_MODEL, _WORKER_MODEL_KEY = model, key
    return _WORKER_MODEL


def decode_image(content: bytes | bytearray | None, image_size: int) -> np.ndarray:
    """Decode, convert to RGB and resize one image: ``(s, s, 3)`` float32 in [0, 255].

    Raises :class:`BadImageError` with a short reason for anything that is not a
    decodable image (empty, truncated, not an image at all).
    """
    from PIL import Image, UnidentifiedImageError

    if not content:
        raise BadImageError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(content)) as img:
            # JPEG only: decode at a reduced scale when the file is much larger than needed.
            img.draft("RGB", (image_size, image_size))
            rgb = img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    except UnidentifiedImageError as exc:
        raise BadImageError("not an image (unidentified format)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImageError(f"cannot decode: {exc}") from exc
    return np.asarray(rgb, dtype=np.float32)


def predict(model: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    """MobileNetV2 features of decoded images, ``batch_size`` at a time (float32)."""
    from keras.applications.mobilenet_v2 import preprocess_input

    out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = preprocess_input(images[start : start + batch_size].copy())
        out[start : start + batch_size] = model.predict_on_batch(batch)
    return out


def featurize_contents(
    model: Any, contents: Sequence[bytes | None], image_size: int, batch_size: int
) -> pd.DataFrame:
    """Features for one batch of file contents: columns ``features`` and ``error``.

    A bad file gets ``features=None`` and its reason in ``error``: never a zero vector.
    """
    decoded: list[np.ndarray] = []
    ok_rows: list[int] = []
    errors: list[str | None] = [None] * len(contents)
    for i, content in enumerate(contents):
        try:
            decoded.append(decode_image(content, image_size))
            ok_rows.append(i)
        except BadImageError as exc:
            errors[i] = str(exc)
    features: list[np.ndarray | None] = [None] * len(contents)
    if decoded:
        for i, vector in zip(ok_rows, predict(model, np.stack(decoded), batch_size), strict=True):
            features[i] = vector
    return pd.DataFrame({"features": features, "error": errors})


def featurize_column(
    content: Column,
    weights: Broadcast,
    *,
    image_size: int,
    batch_size: int,
    threads: int = 1,
) -> Column:
    """A struct column ``(features array<float>, error string)`` computed from ``content``.

    An iterator pandas UDF: the model is fetched (built once per worker) before the
    first Arrow batch; each Arrow batch (``maxRecordsPerBatch`` rows) is one inference
    batch.
    """
    from pyspark.sql.functions import pandas_udf

    # Computed on the driver: a reused worker whose cached model already holds these
    # weights (same job, or a later job with the same weights) does not rebuild it.
    digest = weights_digest(weights.value)

    @pandas_udf(FEATURES_SCHEMA)  # type: ignore[call-overload]
    def featurize(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        model = _worker_model(image_size, weights, digest, threads)
        for contents in batches:
            yield featurize_contents(model, contents.tolist(), image_size, batch_size)

    return featurize(content)


# --- command line -----------------------------------------------------------------------


def export_weights(dest: Path, image_size: int = 224) -> Path:
    """Download the ImageNet weights (needs internet once) and save them as ``.weights.h5``."""
    if not dest.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files must end in .weights.h5, got {dest.name}")
    model = build_model(image_size, "imagenet")
    dest.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(dest))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.features")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export-weights", help="save MobileNetV2 ImageNet weights to a file")
    exp.add_argument("dest", type=Path, help="output file, e.g. mobilenet_v2.weights.h5")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    path = export_weights(args.dest)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); stage it on S3 and pass "
        "--weights s3://.../mobilenet_v2.weights.h5"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
