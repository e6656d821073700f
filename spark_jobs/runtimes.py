"""Model runtimes of the featurisation UDF: LiteRT (default), ONNX Runtime or Keras.

``litert`` and ``onnx`` run MobileNetV2 converted once per run from the same Keras model and
weights, with Keras's own exporters (``model.export(format="litert" | "onnx")``): LiteRT's
interpreter (``ai-edge-litert``, XNNPACK) or ONNX Runtime's CPU provider. Both give Keras's
features to ~4e-7 relative, several times the images/s of Keras's ``predict_on_batch`` per
thread, a third to a half of the memory per Python worker, and need no TensorFlow on the
executors (both have manylinux wheels for x86_64 and aarch64). ``keras`` is kept for parity
checks and for users who want it. ``benchmarks/runtimes.py`` measures the three.

A converted model is one file, a zip (stored, not compressed) holding ``model.tflite`` or
``model.onnx`` and ``model.json``: the runtime, the weights source, a key of the weights'
content, the image size and the SHA-256 of the model bytes. The job refuses a model whose
metadata does not match what it was asked to compute, or whose bytes do not match their
digest (:class:`ModelError`): a stale, foreign or damaged model never produces features.

Converting needs TensorFlow; it runs where TensorFlow already is: the Airflow task that
stages the job (``include/staging/model.py``) or, when the job is given no ``--model``,
a short-lived subprocess of the driver (so the driver itself never holds TensorFlow)::

    python -m spark_jobs.runtimes convert --runtime litert --weights none --out model.zip

Nothing here imports TensorFlow, Keras, LiteRT or onnxruntime at module level.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from spark_jobs import FEATURE_DIM

Runtime = Literal["litert", "onnx", "keras"]
RUNTIMES: tuple[Runtime, ...] = ("litert", "onnx", "keras")
CONVERTED_RUNTIMES: tuple[Runtime, ...] = ("litert", "onnx")
DEFAULT_RUNTIME: Runtime = "litert"

MODEL_FORMAT = "fruits-mobilenet_v2/1"
"""Bumped when the conversion changes in a way that changes features: old models are refused."""
ONNX_OPSET = 17
RANDOM_SEED = 0
"""``--weights none`` is MobileNetV2 initialised with this Keras seed: the same on every run."""
_MODEL_MEMBER = {"litert": "model.tflite", "onnx": "model.onnx"}
_MANIFEST = "model.json"

EXIT_WEIGHTS_ERROR = 2


class ModelError(RuntimeError):
    """A converted model that is missing, corrupt or made from other weights / image size."""


class WeightsError(RuntimeError):
    """The requested weights could not be loaded (offline, missing or incompatible file)."""


def file_digest(path: Path) -> str:
    """blake2b-128 of a file's bytes (the weights file of a ``--weights`` path/URI)."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_key(source: str, local_file: Path | None = None) -> str:
    """What identifies the weights' content without loading them (no TensorFlow).

    ``imagenet`` and ``none`` are fixed by Keras; a weights file is identified by the digest
    of its bytes, not by its name or URI, so a renamed copy is the same weights and a file
    overwritten in place is not.
    """
    if source == "imagenet":
        return "imagenet"
    if source == "none":
        return f"none-seed{RANDOM_SEED}"
    if local_file is None:
        raise ValueError(f"weights {source!r} is a file: its local copy is needed for its key")
    return f"file-{file_digest(local_file)}"


@dataclass(frozen=True)
class ModelSpec:
    """What a converted model must have been made from, and for which runtime."""

    runtime: Runtime
    weights_source: str
    weights_key: str
    image_size: int

    def __post_init__(self) -> None:
        if self.runtime not in CONVERTED_RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r} needs no converted model")

    @property
    def key(self) -> str:
        """Content key of the converted model: format + runtime + weights content + size."""
        text = f"{MODEL_FORMAT}|{self.runtime}|{self.weights_key}|{self.image_size}"
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    @property
    def file_name(self) -> str:
        return f"mobilenet_v2-{self.runtime}-{self.image_size}px-{self.key}.zip"

    def manifest(self, model_sha256: str) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "runtime": self.runtime,
            "weights_source": self.weights_source,
            "weights_key": self.weights_key,
            "image_size": self.image_size,
            "model_key": self.key,
            "model_sha256": model_sha256,
        }


# --- the model file ----------------------------------------------------------------------


def write_model_file(dest: Path, spec: ModelSpec, model_bytes: bytes) -> Path:
    """Write the zip (model + manifest) atomically: a reader never sees half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    manifest = spec.manifest(hashlib.sha256(model_bytes).hexdigest())
    # A partial file of its own: two processes writing the same model (two Airflow tasks
    # sharing a cache) never write into one file.
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".partial")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
            zf.writestr(_MODEL_MEMBER[spec.runtime], model_bytes)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def read_model_file(data: bytes, *, origin: str) -> tuple[dict[str, Any], bytes]:
    """The manifest and model bytes of a model file; :class:`ModelError` when damaged."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read(_MANIFEST))
            member = _MODEL_MEMBER.get(manifest.get("runtime"))
            if member is None:
                raise ModelError(f"{origin}: unknown runtime {manifest.get('runtime')!r}")
            model_bytes = archive.read(member)
    except ModelError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelError(
            f"{origin} is not a converted model of this job ({exc}); convert it with "
            "`python -m spark_jobs.runtimes convert` or let the job convert it (no --model)"
        ) from exc
    if hashlib.sha256(model_bytes).hexdigest() != manifest.get("model_sha256"):
        raise ModelError(f"{origin} is damaged: its model bytes do not match their SHA-256")
    return manifest, model_bytes


def check_model(data: bytes, expected: ModelSpec, *, origin: str) -> bytes:
    """The model bytes, refusing a model made for another runtime, weights or image size."""
    manifest, model_bytes = read_model_file(data, origin=origin)
    if manifest.get("format") != MODEL_FORMAT:
        raise ModelError(
            f"{origin} was converted by another version of this job (format "
            f"{manifest.get('format')!r}, expected {MODEL_FORMAT!r}); convert it again"
        )
    wanted = expected.manifest(manifest["model_sha256"])
    wrong = [
        f"{name}: model has {manifest.get(name)!r}, run asks {wanted[name]!r}"
        for name in ("runtime", "weights_key", "image_size")
        if manifest.get(name) != wanted[name]
    ]
    if wrong:
        raise ModelError(
            f"{origin} was converted for another runtime, other weights or another image "
            f"size ({'; '.join(wrong)}): it would not give the features of --weights "
            f"{expected.weights_source} at {expected.image_size} px; convert it again"
        )
    return model_bytes


# --- conversion (needs TensorFlow: Airflow side or a driver subprocess) ------------------


def build_keras_model(image_size: int, weights: str | None = None):
    """MobileNetV2 without its classifier, average-pooled: ``(n, s, s, 3) -> (n, 1280)``."""
    from keras.applications import MobileNetV2  # noqa: PLC0415 (lazy: loads tensorflow and keras)

    return MobileNetV2(
        input_shape=(image_size, image_size, 3),
        include_top=False,
        pooling="avg",
        weights=weights,
    )


def load_keras_model(source: str, image_size: int, local_file: Path | None = None):
    """The Keras model for ``--weights``; never falls back from one source to another.

    ``local_file`` is the local copy of a weights file (path or downloaded s3:// object).
    """
    if source == "imagenet":
        try:
            return build_keras_model(image_size, "imagenet")
        except Exception as exc:  # keras raises plain Exception subclasses for URL errors
            raise WeightsError(
                "could not load the ImageNet weights (Keras downloads them on first use; "
                f"this machine looks offline: {exc}). Pass --weights with a weights file "
                "(local path or s3:// URI, made once with `python -m spark_jobs.features "
                "export-weights mobilenet_v2.weights.h5` on a machine with internet), or "
                "--weights none for a test run with random weights."
            ) from exc
    if source == "none":
        import keras  # noqa: PLC0415 (lazy: loads tensorflow and keras)

        # A fixed seed: the same random network on every run, so reruns are comparable.
        keras.utils.set_random_seed(RANDOM_SEED)
        return build_keras_model(image_size, None)
    if local_file is None:
        raise ValueError("a weights file needs its local copy")
    model = build_keras_model(image_size, None)
    try:
        with warnings.catch_warnings():
            # Keras only *warns* when parts of a file match no layer ("affected layers
            # will retain their freshly-initialized weights"): a partial load would
            # give silently half-random features, so it fails like a wrong file.
            warnings.filterwarnings("error", message=".*freshly-initialized.*")
            model.load_weights(str(local_file))
    except Exception as exc:
        raise WeightsError(
            f"could not load MobileNetV2 weights from {source}: {exc}. Expected a "
            "Keras weights file (*.weights.h5) of MobileNetV2(include_top=False), "
            "e.g. made with `python -m spark_jobs.features export-weights`."
        ) from exc
    return model


def export_model(model: Any, runtime: Runtime, image_size: int) -> bytes:
    """Keras's own export of ``model`` for ``runtime``, as bytes."""
    # Keras exports only a model that has been called once (it traces the call).
    model.predict_on_batch(np.zeros((1, image_size, image_size, 3), np.float32))
    with tempfile.TemporaryDirectory(prefix="fruits-export-") as tmp:
        out = Path(tmp) / _MODEL_MEMBER[runtime]
        if runtime == "onnx":
            model.export(str(out), format="onnx", verbose=False, opset_version=ONNX_OPSET)
        else:
            model.export(str(out), format="litert", verbose=False)
        return out.read_bytes()


def convert(
    runtime: Runtime, source: str, image_size: int, dest: Path, local_file: Path | None = None
) -> ModelSpec:
    """Build the Keras model for ``source``, export it for ``runtime``, write ``dest``."""
    spec = ModelSpec(runtime, source, weights_key(source, local_file), image_size)
    model = load_keras_model(source, image_size, local_file)
    write_model_file(dest, spec, export_model(model, runtime, image_size))
    return spec


def convert_in_subprocess(
    runtime: Runtime, source: str, image_size: int, dest: Path, local_file: Path | None = None
) -> None:
    """:func:`convert` in a child Python: TensorFlow's ~1 GB leaves with it when it exits.

    Raises :class:`WeightsError` with the child's own message when the weights are unusable.
    """
    cmd = [sys.executable, "-m", "spark_jobs.runtimes", "convert", "--runtime", runtime]
    cmd += ["--weights", source, "--image-size", str(image_size), "--out", str(dest)]
    if local_file is not None:
        cmd += ["--weights-file", str(local_file)]
    # The child imports this package as the parent did (a checkout or the --py-files zip).
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode == EXIT_WEIGHTS_ERROR:
        lines = done.stderr.strip().splitlines() or ["model conversion refused the weights"]
        raise WeightsError(lines[-1].removeprefix("error: "))
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"model conversion failed (exit {done.returncode}):\n{tail}")


# --- prediction (executor side, no TensorFlow for litert / onnx) --------------------------


class Predictor(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Features ``(n, 1280)`` float32 of a preprocessed batch ``(n, s, s, 3)``."""
        ...


def preprocess(images: np.ndarray) -> np.ndarray:
    """``keras.applications.mobilenet_v2.preprocess_input`` in numpy: [0, 255] -> [-1, 1].

    Keras's own ("tf" mode) is ``x /= 127.5; x -= 1.0`` on float32; the same operations in
    the same order give bit-identical inputs without importing TensorFlow.
    """
    x = np.array(images, dtype=np.float32, copy=True)
    x /= np.float32(127.5)
    x -= np.float32(1.0)
    return x


def _checked(out: np.ndarray, n: int) -> np.ndarray:
    if out.shape != (n, FEATURE_DIM):
        raise ModelError(f"model output has shape {out.shape}, expected ({n}, {FEATURE_DIM})")
    return out


class LiteRtPredictor:
    """MobileNetV2 in LiteRT's interpreter (XNNPACK), one per Python worker."""

    def __init__(self, model_bytes: bytes, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 (lazy: loads ai_edge_litert)

        try:
            self._interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"not a loadable LiteRT model: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch: int | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch:
            # Re-planning costs ~ms: only the last batch of a partition has another size.
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(batch))
        self._interpreter.invoke()
        return _checked(self._interpreter.get_tensor(self._output), len(batch))


class OnnxPredictor:
    """MobileNetV2 in ONNX Runtime (CPU provider), one session per Python worker."""

    def __init__(self, model_bytes: bytes, threads: int = 1) -> None:
        import onnxruntime as ort  # noqa: PLC0415 (lazy: loads onnxruntime)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                model_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf classes
            raise ModelError(f"not a loadable ONNX model: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run(None, {self._input: np.ascontiguousarray(batch)})
        return _checked(out, len(batch))


class KerasPredictor:
    """MobileNetV2 in Keras (TensorFlow) with the broadcast weights."""

    def __init__(self, weights: list[np.ndarray], image_size: int, threads: int = 1) -> None:
        configure_tf_threads(threads)
        self._model = build_keras_model(image_size, None)
        self._model.set_weights(weights)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return _checked(np.asarray(self._model.predict_on_batch(batch), np.float32), len(batch))


def make_predictor(runtime: Runtime, payload: Any, image_size: int, threads: int) -> Predictor:
    """The predictor of ``runtime``: ``payload`` is model bytes, or Keras weights for keras."""
    if runtime == "litert":
        return LiteRtPredictor(payload, threads)
    if runtime == "onnx":
        return OnnxPredictor(payload, threads)
    if runtime == "keras":
        return KerasPredictor(payload, image_size, threads)
    raise ValueError(f"unknown runtime {runtime!r}; use one of {RUNTIMES}")


def configure_tf_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` intra-op threads and one inter-op thread.

    Only takes effect before TF initialises in this process; a reused worker keeps its
    first setting (TF raises RuntimeError then, and ignores OMP_NUM_THREADS).
    """
    import tensorflow as tf  # noqa: PLC0415 (lazy: loads tensorflow and keras)

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def predict(predictor: Predictor, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Features of decoded images (``[0, 255]`` float32), ``batch_size`` at a time."""
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        out[start : start + batch_size] = predictor(preprocess(images[start : start + batch_size]))
    return out


# --- command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.runtimes")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert MobileNetV2 (+ weights) for a runtime")
    conv.add_argument("--runtime", choices=CONVERTED_RUNTIMES, default=DEFAULT_RUNTIME)
    conv.add_argument("--weights", required=True, help="imagenet | none | weights file path")
    conv.add_argument("--weights-file", type=Path, help="local copy of a weights file")
    conv.add_argument("--image-size", type=int, default=224)
    conv.add_argument("--out", type=Path, required=True)
    show = sub.add_parser("show", help="print a converted model's manifest")
    show.add_argument("model", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "show":
        manifest, _ = read_model_file(args.model.read_bytes(), origin=str(args.model))
        print(json.dumps(manifest, indent=2))
        return 0
    local = args.weights_file
    if local is None and args.weights not in ("imagenet", "none"):
        local = Path(args.weights)
    if local is not None and not local.is_file():
        print(f"error: weights file {local} does not exist", file=sys.stderr)
        return EXIT_WEIGHTS_ERROR
    try:
        spec = convert(args.runtime, args.weights, args.image_size, args.out, local)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WEIGHTS_ERROR
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB, key {spec.key}, weights {spec.weights_key})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
