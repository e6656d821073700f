"""Featurisation benchmark: the Spark job per model runtime, against the plain runtime.

Every figure comes from one run, on this machine, on the same generated Fruits-360-style
JPEGs (100x100, resized to --image-size, 224 by default), for each ``--runtimes`` entry
(default: ``litert`` = the default fast runtime, and ``keras``):

1. Spark featurisation images/s (the job's ``featurize`` stage: read + decode + MobileNetV2,
   from metrics.json) / the plain runtime's images/s (N processes x 1 thread, batch
   inference on the same files with the same decode, ``features.featurize_contents``).
   Target >= 0.90. Cold: the first job in a fresh ``spark-submit``-like process (JVM start,
   Python workers and model load included); warm: later jobs in the same session (median
   of ``--warm-runs``).
2. Spark featurisation, fast runtime / keras. Target >= 3x.
3. End-to-end images/s per core of the whole cold job (read, PCA, write included;
   ``valid_images / total``), fast / keras. Target >= 2.5x at 4096 images.
4. Peak memory of the job's whole process tree (driver JVM + driver Python + Python
   workers) on local[N], per runtime. Target <= 2.5 GB for the fast runtime.

The fast runtimes' model is converted once beforehand, as the DAGs stage it (the job gets
``--model``); the conversion time is reported on its own.

    python benchmarks/featurize.py --images 4096 --cores 2 [--runtimes litert onnx keras]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
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

from include.datasets.sample import DEFAULT_CLASSES, generate_sample_dataset  # noqa: E402
from spark_jobs import cli  # noqa: E402


def make_images(dest: Path, n_images: int) -> list[Path]:
    """``n_images`` Fruits-360-style JPEGs (8 labels, Training split) under ``dest``."""

    per_label = -(-n_images // len(DEFAULT_CLASSES))
    generate_sample_dataset(dest, per_label=per_label, test_per_label=0)
    files = sorted(dest.rglob("*.jpg"))
    for extra in files[n_images:]:
        extra.unlink()
    return files[:n_images]


def _plain_worker(args: tuple[list[str], str, str, int, int]) -> tuple[float, float, int]:
    """One plain process: (seconds incl. imports + model load, steady seconds, images)."""
    paths, runtime, model, image_size, batch_size = args
    t0 = time.perf_counter()
    from spark_jobs import features as feat  # noqa: PLC0415 (lazy: loads pandas and pyarrow)
    from spark_jobs import runtimes  # noqa: PLC0415 (lazy: loads numpy)

    if runtime == "keras":
        payload, _ = feat.load_weights(None, "none", image_size)  # type: ignore[arg-type]
    else:
        _, payload = runtimes.read_model_file(Path(model).read_bytes(), origin=model)
    predictor = runtimes.make_predictor(runtime, payload, image_size, threads=1)
    warm = runtimes.np.zeros((batch_size, image_size, image_size, 3), "float32")
    predictor(warm)  # trace / plan before timing the steady state
    t1 = time.perf_counter()
    done = 0
    for start in range(0, len(paths), batch_size):
        contents = [Path(p).read_bytes() for p in paths[start : start + batch_size]]
        out = feat.featurize_contents(predictor, contents, image_size, batch_size)
        done += int(out["error"].isna().sum())
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, done


def plain(files: list[Path], cores: int, runtime: str, model: str, args) -> dict:
    """The plain runtime on ``cores`` processes x 1 thread, files split evenly."""
    shards = [[str(p) for p in files[i::cores]] for i in range(cores)]
    work = [(s, runtime, model, args.image_size, args.batch_size) for s in shards]
    ctx = mp.get_context("spawn")
    with PeakMemory() as mem, ctx.Pool(cores) as pool:
        t0 = time.perf_counter()
        results = pool.map(_plain_worker, work)
        wall = time.perf_counter() - t0
    n = sum(r[2] for r in results)
    return {
        "images": n,
        "images_per_s_cold": n / wall,
        # Each process's steady-state time; the slowest one bounds the wall time.
        "images_per_s_warm": n / max(r[1] for r in results),
        "peak_gib": mem.peak_gib,
    }


def _spark_child(argv: list[str]) -> None:
    """In a fresh process (as spark-submit would be): the job 1 + warm times, one session."""
    data, out, cores, runtime, model, image_size, batch_size, warm_runs = argv
    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark and numpy)

    spark = build_session(master=f"local[{cores}]", extra_conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    runs = []
    for i in range(1 + int(warm_runs)):
        job = [
            "--input", data, "--output", out, "--run-id", f"{runtime}-{i}", "--mode", "full",
            "--weights", "none", "--image-size", image_size, "--batch-size", batch_size,
            "--pca-variance", "0.95", "--runtime", runtime,
        ]  # fmt: skip
        if model:
            job += ["--model", model]
        runs.append(cli.run(cli.parse_args(job)))
    spark.stop()
    print("RESULT " + json.dumps(runs))


def spark_job(data: Path, out: Path, cores: int, runtime: str, model: str, args) -> dict:
    cmd = [sys.executable, __file__, "--spark-child", str(data), str(out), str(cores), runtime]
    cmd += [model, str(args.image_size), str(args.batch_size), str(args.warm_runs)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    with PeakMemory(pid=proc.pid) as mem:
        stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the {runtime} Spark job failed (exit {proc.returncode})")
    line = next(x for x in stdout.decode().splitlines() if x.startswith("RESULT "))
    runs = json.loads(line.removeprefix("RESULT "))
    return {"cold": runs[0], "warm": runs[1:], "peak_gib": mem.peak_gib}


def convert(runtime: str, image_size: int, dest: Path) -> float:
    from spark_jobs.runtimes import convert_in_subprocess  # noqa: PLC0415 (lazy: loads numpy)

    t0 = time.perf_counter()
    convert_in_subprocess(runtime, "none", image_size, dest)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def _rate(metrics: dict, key: str) -> float:
    return metrics["throughput"][key]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warm-runs", type=int, default=1, help="warm Spark jobs (median)")
    parser.add_argument("--runtimes", nargs="+", default=["litert", "keras"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    fast = args.runtimes[0]

    per_runtime: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-featurize-") as tmp:
        data = Path(tmp) / "fruits"
        files = make_images(data, args.images)
        print(
            f"{len(files)} images, {args.image_size}px, batch {args.batch_size}, {args.cores} cores"
        )
        for runtime in args.runtimes:
            model, conversion_s = "", None
            if runtime != "keras":
                model = str(Path(tmp) / f"{runtime}.zip")
                conversion_s = round(convert(runtime, args.image_size, Path(model)), 1)
            base = plain(files, args.cores, runtime, model, args)
            job = spark_job(data, Path(tmp) / "out", args.cores, runtime, model, args)
            warm_rates = [_rate(m, "images_per_s_featurize") for m in job["warm"]]
            cold = job["cold"]
            per_runtime[runtime] = {
                "conversion_s": conversion_s,
                "plain": base,
                "spark_featurize_images_per_s": {
                    "cold": _rate(cold, "images_per_s_featurize"),
                    "warm": statistics.median(warm_rates) if warm_rates else None,
                    "all_warm": warm_rates,
                },
                "end_to_end_images_per_s_per_core_cold": _rate(cold, "images_per_s_end_to_end")
                / args.cores,
                "spark_timings_s_cold": cold["timings_s"],
                "peak_memory_gib": job["peak_gib"],
            }
            row = per_runtime[runtime]
            spark_rate = row["spark_featurize_images_per_s"]
            row["ratio_spark_vs_plain"] = {
                "cold": spark_rate["cold"] / base["images_per_s_cold"],
                "warm": spark_rate["warm"] / base["images_per_s_warm"]
                if spark_rate["warm"]
                else None,
            }
            print(f"{runtime}: done", flush=True)

    result: dict = {
        "images": len(files),
        "cores": args.cores,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "runtimes": per_runtime,
    }
    lines = [
        f"{name}: Spark/plain {r['ratio_spark_vs_plain']['cold']:.2f}x cold, "
        f"{(r['ratio_spark_vs_plain']['warm'] or 0):.2f}x warm (target >= 0.90); "
        f"featurize {r['spark_featurize_images_per_s']['cold']:.1f} img/s cold; "
        f"end to end {r['end_to_end_images_per_s_per_core_cold']:.1f} img/s/core cold; "
        f"peak {r['peak_memory_gib']:.2f} GiB"
        for name, r in per_runtime.items()
    ]
    if "keras" in per_runtime and fast != "keras":
        f, k = per_runtime[fast], per_runtime["keras"]
        result["fast_vs_keras"] = {
            "runtime": fast,
            "spark_featurize_cold": f["spark_featurize_images_per_s"]["cold"]
            / k["spark_featurize_images_per_s"]["cold"],
            "spark_featurize_warm": (f["spark_featurize_images_per_s"]["warm"] or 0)
            / (k["spark_featurize_images_per_s"]["warm"] or 1),
            "end_to_end_cold": f["end_to_end_images_per_s_per_core_cold"]
            / k["end_to_end_images_per_s_per_core_cold"],
        }
        ratios = result["fast_vs_keras"]
        lines.append(
            f"{fast} vs keras: Spark featurisation {ratios['spark_featurize_cold']:.2f}x cold, "
            f"{ratios['spark_featurize_warm']:.2f}x warm (target >= 3); end to end cold "
            f"{ratios['end_to_end_cold']:.2f}x (target >= 2.5); peak {f['peak_memory_gib']:.2f} "
            "GiB (target <= 2.5 GB)"
        )
    emit(result, "\n".join(lines), args.json)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--spark-child":
        _spark_child(sys.argv[2:])
    else:
        raise SystemExit(main())
