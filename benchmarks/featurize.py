"""Featurisation benchmark: the Spark job on local[N] against plain TensorFlow, same images.

Prints ratios measured in this run, on this machine, on the same generated Fruits-360-style
JPEGs (100x100, resized to --image-size, 224 by default):

1. Spark featurisation images/s (the job's ``featurize`` stage: read + decode + MobileNetV2,
   from metrics.json) / plain TensorFlow images/s (N processes x 1 TF thread, batch inference
   on the same files). Target >= 0.90. Measured cold (fresh Python workers: TF import and
   model build included, as in a real one-shot job) and warm (later runs in the same
   session, workers already started: the median of ``--warm-runs``).
2. End-to-end images/s per core of the whole job, read, PCA and write included
   (``valid_images / total``). Target >= 32.
3. Peak memory of the whole process tree (driver JVM + Python workers) during the job.

    python benchmarks/featurize.py --images 512 --cores 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from _memory import PeakMemory  # noqa: E402
from _output import emit  # noqa: E402


def make_images(dest: Path, n_images: int) -> list[Path]:
    """``n_images`` Fruits-360-style JPEGs (8 labels, Training split) under ``dest``."""
    from include.sample_data import DEFAULT_CLASSES, generate_sample_dataset

    per_label = -(-n_images // len(DEFAULT_CLASSES))
    generate_sample_dataset(dest, per_label=per_label, test_per_label=0)
    files = sorted(dest.rglob("*.jpg"))
    for extra in files[n_images:]:
        extra.unlink()
    return files[:n_images]


def _tf_worker(args: tuple[list[str], int, int, int]) -> tuple[float, float, int]:
    """One plain-TF process: (seconds incl. TF import + model build, steady seconds, images)."""
    paths, image_size, batch_size, threads = args
    t0 = time.perf_counter()
    from spark_jobs import features as feat

    feat.configure_tf_threads(threads)
    import keras

    keras.utils.set_random_seed(0)
    model = feat.build_model(image_size)
    # Trace the predict function before timing the steady state.
    model.predict_on_batch(feat.np.zeros((batch_size, image_size, image_size, 3), "float32"))
    t1 = time.perf_counter()
    done = 0
    for start in range(0, len(paths), batch_size):
        contents = [Path(p).read_bytes() for p in paths[start : start + batch_size]]
        out = feat.featurize_contents(model, contents, image_size, batch_size)
        done += int(out["error"].isna().sum())
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, done


def plain_tf(files: list[Path], cores: int, image_size: int, batch_size: int) -> dict:
    """Plain TensorFlow on ``cores`` processes x 1 thread, files split evenly."""
    shards = [[str(p) for p in files[i::cores]] for i in range(cores)]
    ctx = mp.get_context("spawn")
    with PeakMemory() as mem, ctx.Pool(cores) as pool:
        t0 = time.perf_counter()
        results = pool.map(_tf_worker, [(s, image_size, batch_size, 1) for s in shards])
        wall = time.perf_counter() - t0
    n = sum(r[2] for r in results)
    return {
        "images": n,
        "images_per_s_cold": n / wall,
        # Each process's steady-state time; the slowest one bounds the wall time.
        "images_per_s_warm": n / max(r[1] for r in results),
        "peak_gib": mem.peak_gib,
    }


def spark_job(
    data: Path, out: Path, cores: int, image_size: int, batch_size: int, warm_runs: int
) -> dict:
    """The job ``1 + warm_runs`` times in one session (cold workers, then warm)."""
    from spark_jobs import cli
    from spark_jobs.session import build_session

    spark = build_session(master=f"local[{cores}]", extra_conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    runs = {}
    with PeakMemory() as mem:
        for name in ["cold"] + [f"warm{i}" for i in range(1, warm_runs + 1)]:
            argv = [
                "--input", str(data), "--output", str(out), "--run-id", name, "--mode", "full",
                "--weights", "none", "--image-size", str(image_size),
                "--batch-size", str(batch_size), "--pca-variance", "0.95",
            ]  # fmt: skip
            runs[name] = cli.run(cli.parse_args(argv))
    spark.stop()
    return {"runs": runs, "peak_gib": mem.peak_gib}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warm-runs", type=int, default=3, help="warm Spark runs (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-featurize-") as tmp:
        data = Path(tmp) / "fruits"
        files = make_images(data, args.images)
        print(
            f"{len(files)} images, {args.image_size}px, batch {args.batch_size}, {args.cores} cores"
        )
        tf = plain_tf(files, args.cores, args.image_size, args.batch_size)
        sp = spark_job(
            data, Path(tmp) / "out", args.cores, args.image_size, args.batch_size, args.warm_runs
        )

    cold = sp["runs"]["cold"]
    warms = [m for name, m in sp["runs"].items() if name != "cold"]
    # The warm run with the median featurisation rate stands for "warm".
    warm = sorted(warms, key=lambda m: m["throughput"]["images_per_s_featurize"])[len(warms) // 2]
    result = {
        "images": len(files),
        "cores": args.cores,
        "image_size": args.image_size,
        "plain_tf": tf,
        "spark_featurize_images_per_s": {
            "cold": cold["throughput"]["images_per_s_featurize"],
            "warm": warm["throughput"]["images_per_s_featurize"],
        },
        "ratio_spark_vs_tf": {
            "cold": cold["throughput"]["images_per_s_featurize"] / tf["images_per_s_cold"],
            "warm": warm["throughput"]["images_per_s_featurize"] / tf["images_per_s_warm"],
        },
        "end_to_end_images_per_s_per_core": {
            "cold": cold["throughput"]["images_per_s_end_to_end"] / args.cores,
            "warm": warm["throughput"]["images_per_s_end_to_end"] / args.cores,
        },
        "spark_featurize_images_per_s_all_warm_runs": [
            m["throughput"]["images_per_s_featurize"] for m in warms
        ],
        "spark_timings_s": {"cold": cold["timings_s"], "warm": warm["timings_s"]},
        "peak_memory_gib": {"spark_job": sp["peak_gib"], "plain_tf": tf["peak_gib"]},
    }
    emit(
        result,
        f"featurisation Spark/TF: warm {result['ratio_spark_vs_tf']['warm']:.2f}x, "
        f"cold {result['ratio_spark_vs_tf']['cold']:.2f}x (target >= 0.90)\n"
        f"end to end: {result['end_to_end_images_per_s_per_core']['warm']:.1f} images/s/core warm, "
        f"{result['end_to_end_images_per_s_per_core']['cold']:.1f} cold (target >= 32)\n"
        f"peak memory: Spark job {sp['peak_gib']:.2f} GiB, plain TF {tf['peak_gib']:.2f} GiB",
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
