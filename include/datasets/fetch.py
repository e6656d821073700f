"""``make dataset``: download the real Fruits-360 archive and unpack it under ``data/``.

The archive is the one of the OpenClassrooms project (~1.3 GB zip); unpacked, the folder
to use is the one holding ``Training/`` (and ``Test/``), printed at the end:

    python -m include.datasets.fetch --dest data
    make run DATA=data/fruits/fruits-360_dataset/fruits-360

Offline, it fails with a message saying how to place the archive by hand. The archive is
checked (a zip with ``Training/<Label>/<image>`` inside, no path escaping the folder) and
unpacked into a temporary folder that is renamed at the end: never a half-extracted dataset.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

FRUITS_URL = (
    "https://s3.eu-west-1.amazonaws.com/course.oc-static.com/projects/Data_Scientist_P8/fruits.zip"
)
ARCHIVE_NAME = "fruits.zip"
EXTRACT_DIRNAME = "fruits"
TIMEOUT_S = 60


class FetchError(RuntimeError):
    """The archive could not be downloaded, is not a Fruits-360 zip, or cannot be unpacked."""


def download(
    url: str, dest: Path, *, progress: Callable[[int, int | None], None] | None = None
) -> Path:
    """Stream ``url`` to ``dest`` (written as ``dest.part``, renamed when complete)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, part.open("wb") as out:
            total = response.headers.get("Content-Length")
            total_bytes = int(total) if total and total.isdigit() else None
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total_bytes)
    except OSError as exc:  # URLError, HTTPError, timeouts, DNS failures, disk full
        part.unlink(missing_ok=True)
        raise FetchError(
            f"cannot download {url}: {exc}. Without internet access, download the archive "
            f"elsewhere and put it at {dest}, then run this command again."
        ) from exc
    part.replace(dest)
    return dest


def dataset_root_in(names: list[str]) -> str:
    """The folder inside the archive that holds ``Training/<Label>/<file>`` ('' = top level)."""
    for name in names:
        parts = PurePosixPath(name).parts
        if parts and parts[0] == "__MACOSX":  # resource forks of archives made on a Mac
            continue
        if "Training" in parts:
            index = parts.index("Training")
            if len(parts) >= index + 3:  # Training/<Label>/<file>
                return "/".join(parts[:index])
    raise FetchError(
        "the archive has no Training/<Label>/<image> files: it is not a Fruits-360 archive"
    )


def _check_member(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise FetchError(f"refusing to unpack {name!r}: it would land outside the folder")


def extract(archive: Path, dest_dir: Path) -> Path:
    """Unpack ``archive`` to ``dest_dir / fruits`` and return the folder holding Training/."""
    if not zipfile.is_zipfile(archive):
        raise FetchError(
            f"{archive} is not a zip archive (an error page instead of the dataset?); delete "
            "it and download again"
        )
    target = dest_dir / EXTRACT_DIRNAME
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        for name in names:
            _check_member(name)
        root = dataset_root_in(names)
        dest_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fruits-extract-", dir=dest_dir))
        try:
            zf.extractall(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.replace(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target / root if root else target


def fetch_dataset(dest_dir: Path, *, url: str = FRUITS_URL, keep_archive: bool = True) -> Path:
    """Download (unless already there) and unpack Fruits-360; return the folder to use."""
    archive = dest_dir / ARCHIVE_NAME
    if archive.is_file() and zipfile.is_zipfile(archive):
        print(f"archive already downloaded: {archive}")
    else:
        print(f"downloading {url} to {archive} ...")
        last = [-1]

        def show(done: int, total: int | None) -> None:
            step = done // (50 << 20)  # a line every 50 MB
            if step != last[0]:
                last[0] = step
                size = f" of {total / 1e6:.0f} MB" if total else ""
                print(f"  {done / 1e6:.0f} MB{size}", flush=True)

        download(url, archive, progress=show)
    folder = extract(archive, dest_dir)
    if not keep_archive:
        archive.unlink()
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download and unpack the Fruits-360 dataset.")
    parser.add_argument("--dest", type=Path, default=Path("data"), help="where to put it")
    parser.add_argument("--url", default=FRUITS_URL, help="archive URL (http(s):// or file://)")
    parser.add_argument("--delete-archive", action="store_true", help="remove the zip after")
    args = parser.parse_args(argv)
    try:
        folder = fetch_dataset(args.dest, url=args.url, keep_archive=not args.delete_archive)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Fruits-360 is in {folder}\nrun the pipeline on it with:  make run DATA={folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
