"""S3 requests the job makes to read an image folder, before and after issue 12 (item 12).

The job's read path runs on local Spark over a generated Fruits-360-style folder seen
through ``counting://`` (``benchmarks/java/CountingFileSystem.java``, compiled here with
``javac`` against pyspark's Hadoop jars): the local filesystem, counting the calls that
become S3 requests on EMRFS/S3A. Each call is mapped to requests as S3 serves them:

* ``getFileStatus``: 1 HEAD (a lower bound: a directory or a missing key adds a LIST);
* ``listStatus``: 1 LIST per 1,000 entries (ListObjectsV2 pages);
* ``open`` (the whole file read): 1 GET.

"before" replays the read actions of the job at commit 87cef05 (``io.read_images`` then
``cli.run``): the listing, ``raw.count()`` in ``read_images``, ``files.count()`` in
``run``, then the featurising scan (mini mode: the whole folder, as the sample's
semi-join was not pushed into the scan). "after" runs today's ``selection.select_input`` and
the featurising scan of the frame it returns (the model replaced by ``length(content)``:
the reads are the same). The folder has Fruits-360's shape (2 splits x 131 labels); the
counts are measured with 2 and 4 images per folder, so the per-image part and the fixed
(per-folder, per-run) part separate, and the 90k figures are those two parts for
Fruits-360's 90,380 images (a ListObjectsV2 page holds 1,000 keys: Fruits-360's label
folders, ~520 images at most per split, need one page each, as here).

    python benchmarks/s3_requests.py [--json out.json]
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from _output import emit  # noqa: E402

from include.datasets.sample import generate_sample_dataset  # noqa: E402

FRUITS_IMAGES = 90_380
FRUITS_LABELS = 131
FRUITS_FOLDERS = 1 + 2 + 2 * FRUITS_LABELS  # root, splits, label folders


def make_folder(root: Path, per_folder: int, jpeg: bytes) -> int:
    """Fruits-360's folder shape with ``per_folder`` copies of one JPEG in each label."""
    for split in ("Training", "Test"):
        for label in range(FRUITS_LABELS):
            folder = root / split / f"Fruit {label}"
            folder.mkdir(parents=True)
            for i in range(per_folder):
                (folder / f"{i}_100.jpg").write_bytes(jpeg)
    return 2 * FRUITS_LABELS * per_folder


def compile_counting_fs(dest: Path) -> Path:
    import pyspark  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    jars = glob.glob(str(Path(pyspark.__file__).parent / "jars" / "*.jar"))
    source = Path(__file__).resolve().parent / "java" / "CountingFileSystem.java"
    subprocess.run(
        ["javac", "-nowarn", "-cp", os.pathsep.join(jars), "-d", str(dest), str(source)],
        check=True,
    )
    return dest


def requests(counts: dict[str, int]) -> dict[str, int]:
    return {
        "LIST": counts.get("listPages", 0),
        "HEAD": counts.get("getFileStatus", 0),
        "GET": counts.get("open", 0),
    }


def measure(spark, data: Path, mode: str) -> dict[str, dict[str, int]]:
    from pyspark.sql import functions as F  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    from spark_jobs import cli, io, selection, transforms  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    jvm_fs = spark._jvm.fruits.bench.CountingFileSystem
    uri = "counting://" + str(data)
    argv = ["--input", uri, "--output", "/unused", "--run-id", "bench", "--mode", mode]
    if mode == "mini":
        argv += ["--max-images", "20"]
    args = cli.parse_args(argv)

    def counted(action) -> dict[str, int]:
        jvm_fs.reset()
        action()
        raw = str(jvm_fs.counts())
        return requests({k: int(v) for k, v in (p.split("=") for p in raw.split(",") if p)})

    def before() -> None:
        io.detect_format(spark, uri)
        raw = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", transforms.IMAGE_GLOB)
            .load(uri)
            .select(F.col("path").alias("uri"), "content", "length")
        )
        raw._jdf.inputFiles()
        raw.count()  # read_images: zero-byte check
        files = transforms.with_labels(
            raw.withColumn("path", transforms.relative_path(F.col("uri")))
        ).transform(transforms.image_files_only)
        files.count()  # run: total_files
        files.agg(F.sum(F.length("content"))).collect()  # the featurising scan

    def after() -> None:
        files = selection.select_input(args, spark, uri).files
        files.agg(F.sum(F.length("content"))).collect()  # the featurising scan

    return {"before": counted(before), "after": counted(after)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args(argv)

    from spark_jobs.session import build_session  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    with tempfile.TemporaryDirectory(prefix="fruits-s3req-") as tmp:
        classes = compile_counting_fs(Path(tmp) / "classes")
        generate_sample_dataset(Path(tmp) / "one", per_label=1, test_per_label=0)
        jpeg = next((Path(tmp) / "one").rglob("*.jpg")).read_bytes()
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        sizes = {"small": make_folder(small, 2, jpeg), "large": make_folder(large, 4, jpeg)}
        folders = 1 + sum(1 for p in small.rglob("*") if p.is_dir())
        assert folders == FRUITS_FOLDERS
        spark = build_session(
            master="local[2]",
            app_name="fruits-s3-requests",
            extra_conf={
                "spark.driver.extraClassPath": str(classes),
                "spark.hadoop.fs.counting.impl": "fruits.bench.CountingFileSystem",
                "spark.ui.enabled": "false",
            },
        )
        spark.sparkContext.setLogLevel("ERROR")
        result: dict = {"folders": folders, "images": sizes, "measured": {}, "fruits_360": {}}
        for mode in ("full", "mini"):
            at = {
                name: measure(spark, root, mode)
                for name, root in (("small", small), ("large", large))
            }
            result["measured"][mode] = at
            projected = {}
            for phase in ("before", "after"):
                projected[phase] = {}
                for kind in ("LIST", "HEAD", "GET"):
                    a, b = at["small"][phase][kind], at["large"][phase][kind]
                    per_file = (b - a) / (sizes["large"] - sizes["small"])
                    fixed = a - per_file * sizes["small"]
                    projected[phase][kind] = round(per_file * FRUITS_IMAGES + fixed)
                projected[phase]["total"] = sum(projected[phase].values())
            result["fruits_360"][mode] = projected
        spark.stop()

    lines = [
        f"Fruits-360 ({FRUITS_IMAGES:,} images, {FRUITS_FOLDERS} folders), S3 requests to read "
        "the input (LIST / HEAD / GET = total):"
    ]
    for mode, phases in result["fruits_360"].items():
        for phase, r in phases.items():
            lines.append(
                f"  {mode:4} {phase:6}: {r['LIST']:>7,} / {r['HEAD']:>7,} / {r['GET']:>7,}"
                f" = {r['total']:>7,}"
            )
        ratio = phases["before"]["total"] / max(1, phases["after"]["total"])
        lines.append(f"  {mode:4} before/after: {ratio:.1f}x")
    emit(result, "\n".join(lines), opts.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
