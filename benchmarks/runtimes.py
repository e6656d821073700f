"""Which CPU runtime should run MobileNetV2? Every candidate measured in one run, same inputs.

Candidates: Keras 3 ``predict_on_batch`` (TensorFlow, ``--runtime keras``), LiteRT
(``ai-edge-litert``, XNNPACK) on Keras's own LiteRT export (``--runtime litert``) and ONNX
Runtime on Keras's own ONNX export (``--runtime onnx``), each run exactly as the job's
Python workers run it (``spark_jobs.runtimes``). Each runs in fresh processes with one
intra-op thread: one process alone, then ``--procs`` processes at once (one per core, as
Spark's Python workers run). Reported per candidate: images/s alone and together, peak
RSS of one process (model + one batch), and the max relative difference of its features
to Keras's (max |diff| / max |keras|) on the same preprocessed batch.

    python benchmarks/runtimes.py [--images 256] [--batch 64] [--procs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._output import emit
from spark_jobs.runtimes import (
    CONVERTED_RUNTIMES,
    build_keras_model,
    configure_tf_threads,
    convert_in_subprocess,
    make_predictor,
    preprocess,
    read_model_file,
)

IMAGE_SIZE = 224


def _child(runtime: str, model: str, images: int, batch: int, out: str) -> None:
    """Run in a fresh process: load the model, warm up, time ``images`` images."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 255, (batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)

    x = preprocess(raw)
    if runtime == "keras":
        import keras  # noqa: PLC0415 (lazy: loads tensorflow and keras)

        keras.utils.set_random_seed(0)

        configure_tf_threads(1)
        net = build_keras_model(IMAGE_SIZE, None)

        def run(b):
            return net.predict_on_batch(b)
    else:
        _, model_bytes = read_model_file(Path(model).read_bytes(), origin=model)
        run = make_predictor(runtime, model_bytes, IMAGE_SIZE, threads=1)

    first = np.asarray(run(x))  # warm-up, also the features compared with Keras's
    rounds = max(1, images // batch)
    t0 = time.perf_counter()
    for _ in range(rounds):
        run(x)
    elapsed = time.perf_counter() - t0
    np.save(out, first)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_s": rounds * batch / elapsed, "peak_rss_mb": peak_mb}))


def _convert(tmp: Path) -> dict[str, str]:
    """The job's own conversions of the same seeded network (subprocesses, as the job does)."""

    models = {"keras": ""}
    for runtime in CONVERTED_RUNTIMES:
        dest = tmp / f"{runtime}.zip"
        convert_in_subprocess(runtime, "none", IMAGE_SIZE, dest)
        models[runtime] = str(dest)
    return models


def _spawn(runtime: str, model: str, images: int, batch: int, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--child", runtime, model, str(images), str(batch), str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)


def _result(proc: subprocess.Popen) -> dict:
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed with exit {proc.returncode}")
    return json.loads(stdout.decode().strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fruits-runtimes-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        models = _convert(tmp)
        convert_s = time.perf_counter() - t0
        rows: dict[str, dict] = {}
        for runtime, model in models.items():
            alone = _result(_spawn(runtime, model, args.images, args.batch, tmp / f"{runtime}.npy"))
            procs = [
                _spawn(runtime, model, args.images, args.batch, tmp / f"{runtime}-{i}.npy")
                for i in range(args.procs)
            ]
            together = [_result(p) for p in procs]
            rows[runtime] = {
                "images_per_s_1_thread": round(alone["images_per_s"], 1),
                f"images_per_s_{args.procs}_procs": round(
                    sum(r["images_per_s"] for r in together), 1
                ),
                "peak_rss_mb": round(alone["peak_rss_mb"]),
            }
        keras_out = np.load(tmp / "keras.npy")
        for runtime, row in rows.items():
            diff = np.abs(np.load(tmp / f"{runtime}.npy") - keras_out).max()
            row["max_rel_diff_to_keras"] = float(diff / np.abs(keras_out).max())
            row["speedup_vs_keras_1_thread"] = round(
                row["images_per_s_1_thread"] / rows["keras"]["images_per_s_1_thread"], 2
            )
    figures = {
        "image_size": IMAGE_SIZE,
        "batch": args.batch,
        "images": args.images,
        "procs": args.procs,
        "conversion_s": round(convert_s, 1),
        "runtimes": rows,
    }
    summary = [
        f"{name:7s} {r['images_per_s_1_thread']:7.1f} img/s alone  "
        f"{r[f'images_per_s_{args.procs}_procs']:7.1f} img/s x{args.procs}  "
        f"peak {r['peak_rss_mb']:5d} MB  rel diff {r['max_rel_diff_to_keras']:.1e}  "
        f"x{r['speedup_vs_keras_1_thread']}"
        for name, r in rows.items()
    ]
    emit(figures, "\n".join(summary), args.json)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:4], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        raise SystemExit(main())
