"""Feature-cache benchmark: a rerun after adding a few images, with and without the cache.

One Spark session (local[N]), the same generated Fruits-360-style JPEGs, the default fast
runtime (litert, its model converted once beforehand as the DAGs stage it), in order:

0. a warm-up job (JVM, Python workers, model load), not counted;
1. the full dataset without the cache;
2. the full dataset with an empty cache (every image featurised, the cache filled);
3. the dataset plus ``--added`` new images, with the cache (only those are featurised);
4. the same dataset plus the new images, without the cache (every image featurised).

Prints each job's total and featurisation seconds, what it featurised and reused, and the
ratios 4/3 (what the cache saves on a rerun) and 2/1 (what filling the cache costs).

    python benchmarks/feature_cache.py --images 2048 --added 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import emit  # noqa: E402
from featurize import convert, make_images  # noqa: E402

from spark_jobs import cli  # noqa: E402


def _add_images(data: Path, count: int) -> None:
    """``count`` new images (new bytes: inverted copies) next to existing ones."""
    from PIL import Image, ImageOps  # noqa: PLC0415 (lazy: loads PIL)

    sources = sorted(data.rglob("*.jpg"))[:count]
    for i, path in enumerate(sources):
        ImageOps.invert(Image.open(path).convert("RGB")).save(path.with_name(f"added_{i}.jpg"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--added", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark and numpy)

    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        data, out, cache = Path(tmp) / "fruits", Path(tmp) / "out", Path(tmp) / "cache"
        make_images(data, args.images)
        model = Path(tmp) / "litert.zip"
        convert("litert", 224, model)
        spark = build_session(
            master=f"local[{args.cores}]",
            extra_conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
        )
        spark.sparkContext.setLogLevel("ERROR")

        def job(run_id: str, *, with_cache: bool) -> dict:
            argv = [
                "--input", str(data), "--output", str(out), "--run-id", run_id,
                "--mode", "full", "--weights", "none", "--runtime", "litert",
                "--model", str(model),
            ]  # fmt: skip
            if with_cache:
                argv += ["--feature-cache", str(cache)]
            metrics = cli.run(cli.parse_args(argv))
            return {
                "total_s": metrics["timings_s"]["total"],
                "featurize_s": metrics["timings_s"]["featurize"],
                "images": metrics["counts"]["valid_images"],
                "featurized": metrics["counts"]["featurized"],
                "reused": metrics["counts"]["reused"],
            }

        job("warm-up", with_cache=False)
        runs = {
            "1_full_no_cache": job("full-no-cache", with_cache=False),
            "2_full_fill_cache": job("full-fill-cache", with_cache=True),
        }
        _add_images(data, args.added)
        runs["3_added_with_cache"] = job("added-with-cache", with_cache=True)
        runs["4_added_no_cache"] = job("added-no-cache", with_cache=False)
        spark.stop()

    no_cache, cached = runs["4_added_no_cache"], runs["3_added_with_cache"]
    result = {
        "images": args.images,
        "added": args.added,
        "cores": args.cores,
        "runs": runs,
        "rerun_speedup_total": round(no_cache["total_s"] / cached["total_s"], 2),
        "rerun_speedup_featurize": round(no_cache["featurize_s"] / cached["featurize_s"], 2),
        "fill_overhead_total": round(
            runs["2_full_fill_cache"]["total_s"] / runs["1_full_no_cache"]["total_s"], 2
        ),
    }
    summary = (
        f"{args.images} images + {args.added} added, {args.cores} cores: the rerun featurised "
        f"{cached['featurized']} and reused {cached['reused']}; job {cached['total_s']:.1f} s "
        f"vs {no_cache['total_s']:.1f} s without the cache "
        f"({result['rerun_speedup_total']}x; featurisation {result['rerun_speedup_featurize']}x)."
        f" Filling the cache cost {result['fill_overhead_total']}x a job without it."
    )
    emit(result, summary, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
