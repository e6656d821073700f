"""What mini mode reads from packed shards, against a full read (bytes, shards, row groups).

Generates a Fruits-360-style dataset, packs it (``spark_jobs.packing``, 512 images per row
group), then runs the job's own input selection (``spark_jobs.selection.select_input``) in mini
and full mode on local Spark and forces the image bytes to be read. Spark's input bytes per
job come from its REST API (the stages' ``inputBytes``); the shards and row groups holding
at least one chosen image are counted from the parquet footers (the least a reader must
touch).

    python benchmarks/mini_packed_reads.py --per-label 300 --max-images 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from pathlib import Path

from include.datasets.sample import generate_sample_dataset
from spark_jobs.selection import select_input

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def _input_bytes(spark, before: set[int]) -> tuple[int, set[int]]:
    sc = spark.sparkContext
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages?status=complete"
    with urllib.request.urlopen(url) as response:  # Spark's own UI on this machine
        stages = json.load(response)
    new = [s for s in stages if s["stageId"] not in before]
    return sum(s["inputBytes"] for s in new), {s["stageId"] for s in stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-label", type=int, default=300)
    parser.add_argument("--max-images", type=int, default=20)
    parser.add_argument("--shard-mb", type=float, default=2.0)
    args = parser.parse_args()

    import pyarrow.parquet as pq  # noqa: PLC0415 (lazy: loads pyarrow and numpy)
    from pyspark.sql import functions as F  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    from spark_jobs.packing import pack_images  # noqa: PLC0415 (lazy: loads pyarrow and numpy)
    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    work = Path(tempfile.mkdtemp())
    generate_sample_dataset(work / "src", per_label=args.per_label, test_per_label=0)
    summary = pack_images(
        work / "src", work / "packed", target_shard_bytes=int(args.shard_mb * 2**20)
    )
    spark = build_session(master="local[2]")
    results = {}
    seen: set[int] = set()
    _, seen = _input_bytes(spark, seen)
    for mode in ("full", "mini"):
        ns = argparse.Namespace(
            mode=mode,
            max_images=args.max_images if mode == "mini" else None,
            per_class=None,
            seed=42,
            input_format="auto",
            input=str(work / "packed"),
        )
        files = select_input(ns, spark, str(work / "packed")).files
        rows = files.select("path", F.length("content").alias("n")).collect()
        read, seen = _input_bytes(spark, seen)
        results[mode] = {
            "images": len(rows),
            "spark_input_bytes": read,
            "paths": {r[0] for r in rows},
        }
    chosen = results["mini"]["paths"]
    shards_hit = groups_hit = groups = 0
    for shard in summary.shards:
        meta = pq.ParquetFile(shard)
        hit = False
        for g in range(meta.num_row_groups):
            groups += 1
            paths = set(meta.read_row_group(g, columns=["path"]).column(0).to_pylist())
            if paths & chosen:
                groups_hit += 1
                hit = True
        shards_hit += hit
    out = {
        "images": summary.images,
        "packed_bytes": sum(s.stat().st_size for s in summary.shards),
        "shards": len(summary.shards),
        "row_groups": groups,
        "mini_images": results["mini"]["images"],
        "shards_with_a_chosen_image": shards_hit,
        "row_groups_with_a_chosen_image": groups_hit,
        "full_spark_input_bytes": results["full"]["spark_input_bytes"],
        "mini_spark_input_bytes": results["mini"]["spark_input_bytes"],
    }
    print(json.dumps(out, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
