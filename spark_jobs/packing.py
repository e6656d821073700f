"""Pack many small image files into a few large parquet shards (no Spark needed).

Reading ~90k files of ~5 KB from S3 costs one request each; the job reads the same
images from tens of ~128 MB shards instead. Columns: ``path`` (``<split>/<Label>/<file>``
relative to the source folder), ``split``, ``label``, ``content`` (the file's bytes,
unchanged) and ``length``. Every file with an image extension is carried, zero-byte and
undecodable ones included, so the job counts them as bad files exactly as when it reads
the folder itself; other files (and hidden ones) are skipped, as the job's image filter
would skip them. The same input gives the same shards, byte for byte.

    python -m spark_jobs.packing SRC_DIR DEST_DIR
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
SHARD_PATTERN = "part-{:05d}.parquet"
SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("split", pa.string()),
        ("label", pa.string()),
        ("content", pa.binary()),
        ("length", pa.int64()),
    ]
)
_ROWS_PER_GROUP = 512


@dataclass(frozen=True)
class PackSummary:
    """What :func:`pack_images` wrote."""

    images: int
    empty_files: int
    skipped_files: int
    total_bytes: int
    shards: list[Path] = field(default_factory=list)


def iter_image_files(src_dir: Path) -> Iterator[Path]:
    """Image files under ``src_dir`` in a stable (sorted) order, hidden entries skipped."""
    for root, dirs, files in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for name in sorted(files):
            if not name.startswith((".", "_")):
                yield Path(root) / name


def pack_images(
    src_dir: Path, dest_dir: Path, *, target_shard_bytes: int = 128 * 1024 * 1024
) -> PackSummary:
    """Write ``dest_dir/part-00000.parquet``... from the images under ``src_dir``.

    Existing ``part-*.parquet`` files in ``dest_dir`` are replaced. Raises
    FileNotFoundError if ``src_dir`` is missing and ValueError if it holds no image file.
    """
    src_dir, dest_dir = Path(src_dir), Path(dest_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir} is not a folder")
    if target_shard_bytes < 1:
        raise ValueError("target_shard_bytes must be positive")
    dest_dir.mkdir(parents=True, exist_ok=True)
    for old in dest_dir.glob("part-*.parquet"):
        old.unlink()

    shards: list[Path] = []
    images = empty = skipped = total = 0
    rows: list[tuple[str, str, str, bytes, int]] = []
    writer: pq.ParquetWriter | None = None
    shard_bytes = 0

    def flush() -> None:
        nonlocal rows
        if rows and writer is not None:
            columns = list(zip(*rows, strict=True))
            writer.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=SCHEMA))
        rows = []

    try:
        for file in iter_image_files(src_dir):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped += 1
                continue
            rel = file.relative_to(src_dir)
            content = file.read_bytes()
            if writer is None or shard_bytes >= target_shard_bytes:
                flush()
                if writer is not None:
                    writer.close()
                shards.append(dest_dir / SHARD_PATTERN.format(len(shards)))
                writer = pq.ParquetWriter(shards[-1], SCHEMA, compression="none")
                shard_bytes = 0
            parts = rel.parts
            split = parts[-3] if len(parts) >= 3 else ""
            label = parts[-2] if len(parts) >= 2 else ""
            rows.append((rel.as_posix(), split, label, content, len(content)))
            images += 1
            empty += not content
            total += len(content)
            shard_bytes += len(content)
            if len(rows) >= _ROWS_PER_GROUP:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    if images == 0:
        raise ValueError(f"no .jpg/.jpeg/.png files under {src_dir}")
    return PackSummary(
        images=images, empty_files=empty, skipped_files=skipped, total_bytes=total, shards=shards
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.packing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("src_dir", type=Path)
    parser.add_argument("dest_dir", type=Path)
    parser.add_argument("--shard-mb", type=int, default=128)
    args = parser.parse_args(argv)
    summary = pack_images(
        args.src_dir, args.dest_dir, target_shard_bytes=args.shard_mb * 1024 * 1024
    )
    print(
        f"packed {summary.images} files ({summary.total_bytes / 1e6:.1f} MB, "
        f"{summary.empty_files} empty, {summary.skipped_files} skipped) "
        f"into {len(summary.shards)} shard(s) under {args.dest_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
