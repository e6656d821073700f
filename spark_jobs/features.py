"""MobileNetV2 featurisation: the model prepared once on the driver, one per Python worker.

The driver prepares the model of ``--runtime`` once per run (:func:`prepare_model`):

* ``litert`` / ``onnx`` (no TensorFlow on the executors): the converted model file given
  with ``--model`` (staged by the Airflow task, checked against ``--weights`` and
  ``--image-size``), or, without ``--model``, converted from ``--weights`` in a short-lived
  subprocess of the driver. Its bytes (~9 MB) are broadcast.
* ``keras``: ``--weights`` resolved (``imagenet`` | ``none`` | a file path or ``s3://`` URI)
  and ``model.get_weights()`` (~9 MB) broadcast.

Each Python worker builds its predictor once and caches it in this module
(``_WORKER_PREDICTOR``): workers are reused across tasks, so the model is not rebuilt per
task or per batch. This module must be shipped to executors (``--py-files``) for that
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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from spark_jobs.runtimes import (
    CONVERTED_RUNTIMES,
    ModelError,
    ModelSpec,
    Predictor,
    Runtime,
    WeightsError,
    build_keras_model,
    check_model,
    convert_in_subprocess,
    load_keras_model,
    make_predictor,
    predict,
    weights_key,
)

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import Column, SparkSession

__all__ = ["BadImageError", "ModelError", "WeightsError", "featurize_column", "prepare_model"]

FEATURES_SCHEMA = "features array<float>, error string"


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


def weights_info(source: str, where: str) -> WeightsInfo:
    """The metrics' account of ``--weights``; ``where`` says where they were loaded."""
    if source == "imagenet":
        return WeightsInfo("imagenet", True, f"Keras ImageNet weights, {where}")
    if source == "none":
        return WeightsInfo(
            "none",
            False,
            "random initialisation (seed 0): for tests and offline demos only, "
            "features and PCA are not meaningful",
        )
    return WeightsInfo(source, True, f"weights file, {where}")


@dataclass(frozen=True)
class PreparedModel:
    """What the executors need to build their predictor, and what metrics.json records."""

    runtime: Runtime
    payload: Any
    """Converted model bytes (litert, onnx) or the Keras weights arrays (keras)."""
    digest: str
    weights: WeightsInfo
    model: dict[str, Any] = field(default_factory=dict)


def _local_weights_copy(spark: SparkSession, source: str, tmp: Path) -> Path | None:
    if source in ("imagenet", "none"):
        return None
    from spark_jobs.io import copy_to_local, qualify  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    local = tmp / Path(source.rstrip("/")).name
    try:
        return copy_to_local(spark, qualify(source), local)
    except FileNotFoundError as exc:
        raise WeightsError(f"could not load MobileNetV2 weights from {source}: {exc}") from exc


def load_weights(
    spark: SparkSession, source: str, image_size: int
) -> tuple[list[np.ndarray], WeightsInfo]:
    """Resolve ``--weights`` on the driver for the keras runtime; never falls back."""
    with tempfile.TemporaryDirectory(prefix="fruits-weights-") as tmp:
        local = _local_weights_copy(spark, source, Path(tmp))
        model = load_keras_model(source, image_size, local)
    return model.get_weights(), weights_info(source, "loaded on the driver")


def prepare_model(
    spark: SparkSession,
    *,
    runtime: Runtime,
    weights: str,
    image_size: int,
    model_uri: str | None = None,
) -> PreparedModel:
    """The run's model, once: checked (``--model``) or converted, or the Keras weights.

    Raises :class:`WeightsError` (unusable weights) or :class:`ModelError` (a missing,
    damaged or mismatched model file): the job exits 2 and publishes nothing.
    """
    if runtime == "keras":
        if model_uri:
            raise ModelError("--model is a converted model: it is not used by --runtime keras")
        arrays, info = load_weights(spark, weights, image_size)
        return PreparedModel(runtime, arrays, weights_digest(arrays), info)
    if runtime not in CONVERTED_RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}")
    from spark_jobs.io import copy_to_local, qualify  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fruits-model-") as tmp_name:
        tmp = Path(tmp_name)
        local_weights = _local_weights_copy(spark, weights, tmp)
        spec = ModelSpec(runtime, weights, weights_key(weights, local_weights), image_size)
        if model_uri:
            try:
                local_model = copy_to_local(spark, qualify(model_uri), tmp / "model.zip")
            except FileNotFoundError as exc:
                raise ModelError(f"converted model {model_uri} does not exist") from exc
            origin, how = model_uri, "staged converted model"
        else:
            local_model = tmp / spec.file_name
            convert_in_subprocess(runtime, weights, image_size, local_model, local_weights)
            origin, how = "the driver's conversion", "converted on the driver"
        model_bytes = check_model(local_model.read_bytes(), spec, origin=origin)
    return PreparedModel(
        runtime,
        model_bytes,
        hashlib.blake2b(model_bytes, digest_size=16).hexdigest(),
        weights_info(weights, how),
        {
            "runtime": runtime,
            "key": spec.key,
            "source": model_uri or "converted on the driver",
            "bytes": len(model_bytes),
            "prepare_s": round(time.perf_counter() - t0, 3),
        },
    )


# --- executor side ------------------------------------------------------------------

_WORKER_PREDICTOR: Predictor | None = None
_WORKER_KEY: tuple[str, int, str] | None = None


def weights_digest(weights: Sequence[np.ndarray]) -> str:
    """A content hash of the weights (~10 ms for MobileNetV2's 9 MB)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in weights:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _worker_predictor(
    runtime: Runtime, image_size: int, payload: Broadcast, digest: str, threads: int
) -> Predictor:
    global _WORKER_PREDICTOR, _WORKER_KEY
    key = (runtime, image_size, digest)
    if key != _WORKER_KEY:
        if _WORKER_KEY is not None and _WORKER_KEY[0] == "keras":
            import keras  # noqa: PLC0415 (lazy: loads tensorflow and keras)

            # A reused worker serving a new job: free the previous job's graph first.
            _WORKER_PREDICTOR = None
            keras.backend.clear_session()
        _WORKER_PREDICTOR = make_predictor(runtime, payload.value, image_size, threads)
        _WORKER_KEY = key
    assert _WORKER_PREDICTOR is not None
    return _WORKER_PREDICTOR


def decode_image(content: bytes | bytearray | None, image_size: int) -> np.ndarray:
    """Decode, convert to RGB and resize one image: ``(s, s, 3)`` float32 in [0, 255].

    Raises :class:`BadImageError` with a short reason for anything that is not a
    decodable image (empty, truncated, not an image at all).
    """
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 (lazy: loads PIL)

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


def featurize_contents(
    predictor: Predictor, contents: Sequence[bytes | None], image_size: int, batch_size: int
) -> pd.DataFrame:
    """Features for one batch of file contents: columns ``features`` and ``error``.

    A bad file gets ``features=None`` and its reason in ``error``: never a zero vector.
    A null content (not an empty one) is not asked for: ``features`` and ``error`` stay
    null and nothing is decoded (the feature cache's reused images).
    """
    decoded: list[np.ndarray] = []
    ok_rows: list[int] = []
    errors: list[str | None] = [None] * len(contents)
    for i, content in enumerate(contents):
        if content is None:
            continue
        try:
            decoded.append(decode_image(content, image_size))
            ok_rows.append(i)
        except BadImageError as exc:
            errors[i] = str(exc)
    features: list[np.ndarray | None] = [None] * len(contents)
    if decoded:
        vectors = predict(predictor, np.stack(decoded), batch_size)
        for i, vector in zip(ok_rows, vectors, strict=True):
            features[i] = vector
    return pd.DataFrame({"features": features, "error": errors})


def featurize_column(
    content: Column,
    model: PreparedModel,
    payload: Broadcast,
    *,
    image_size: int,
    batch_size: int,
    threads: int = 1,
) -> Column:
    """A struct column ``(features array<float>, error string)`` computed from ``content``.

    An iterator pandas UDF: the predictor is fetched (built once per worker) before the
    first Arrow batch; each Arrow batch (``maxRecordsPerBatch`` rows) is one inference
    batch. ``payload`` is the broadcast of ``model.payload``.
    """
    from pyspark.sql.functions import pandas_udf  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    # Plain values only in the closure: a reused worker whose cached predictor already
    # holds this model (same job, or a later job with the same model) does not rebuild it.
    runtime, digest = model.runtime, model.digest

    @pandas_udf(FEATURES_SCHEMA)  # type: ignore[call-overload]
    def featurize(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        predictor = _worker_predictor(runtime, image_size, payload, digest, threads)
        for contents in batches:
            yield featurize_contents(predictor, contents.tolist(), image_size, batch_size)

    return featurize(content)


# --- command line -----------------------------------------------------------------------


def export_weights(dest: Path, image_size: int = 224) -> Path:
    """Download the ImageNet weights (needs internet once) and save them as ``.weights.h5``."""
    if not dest.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files must end in .weights.h5, got {dest.name}")
    model = build_keras_model(image_size, "imagenet")
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
