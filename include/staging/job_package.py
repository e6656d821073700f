"""Package the Spark job for spark-submit: ``--py-files spark_jobs.zip`` plus an entry script.

:func:`build_job_package` writes, under ``dest_dir``: ``spark_jobs.zip`` (the
``spark_jobs`` package, without tests and caches), ``entrypoint.py`` (the script
spark-submit runs), ``bootstrap.sh`` (the EMR bootstrap action) and ``requirements.txt``
(what the bootstrap installs on every node: ``spark_jobs/requirements.txt`` plus the
chosen runtime's ``spark_jobs/requirements-<runtime>.txt``, so nodes get TensorFlow only
when ``--runtime keras`` runs). The zip is deterministic — sorted entries,
fixed timestamps and permissions — so an unchanged package has the same bytes and its
upload is skipped.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from include.config import REPO_ROOT

PACKAGE_NAME = "spark_jobs"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
_EXCLUDED_DIRS = frozenset({"__pycache__", "tests", ".pytest_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = frozenset({".pyc", ".pyo"})


@dataclass(frozen=True)
class JobPackage:
    """Paths of the files that make up one job package."""

    entry_script: Path
    py_files: Path
    bootstrap: Path
    requirements: Path

    def files(self) -> dict[str, Path]:
        """Upload names (file names) mapped to local paths."""
        return {
            path.name: path
            for path in (self.entry_script, self.py_files, self.bootstrap, self.requirements)
        }


def _package_files(package_dir: Path) -> list[Path]:
    files = []
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if any(part in _EXCLUDED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in _EXCLUDED_SUFFIXES:
            files.append(path)
    return files


def build_zip(package_dir: Path, dest: Path) -> Path:
    """Zip ``package_dir`` as ``<package name>/...`` into ``dest``, deterministically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _package_files(package_dir):
            arcname = f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}"
            info = zipfile.ZipInfo(arcname, date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    tmp.replace(dest)  # no half-written zip under the final name
    return dest


def node_requirements(runtime: str, package_dir: Path | None = None) -> str:
    """What the bootstrap installs on every node for ``runtime``: base + runtime pins."""
    package_dir = Path(package_dir) if package_dir is not None else REPO_ROOT / PACKAGE_NAME
    parts = []
    for path in (package_dir / "requirements.txt", package_dir / f"requirements-{runtime}.txt"):
        if not path.is_file():
            raise FileNotFoundError(f"the Spark job package is incomplete; missing: {path}")
        parts.append(f"# --- {path.name}\n{path.read_text().strip()}\n")
    return "".join(parts)


def build_job_package(
    dest_dir: Path, *, source_dir: Path | None = None, runtime: str = "litert"
) -> JobPackage:
    """Build the job package under ``dest_dir`` from ``source_dir`` (default: ``spark_jobs/``).

    Raises FileNotFoundError naming the missing file when the package is incomplete.
    """
    package_dir = Path(source_dir) if source_dir is not None else REPO_ROOT / PACKAGE_NAME
    required = {
        name: package_dir / name
        for name in ("__init__.py", "entrypoint.py", "bootstrap.sh", "requirements.txt")
    }
    missing = [str(path) for path in required.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the Spark job package is incomplete; missing: {', '.join(missing)}"
        )
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    copies = {}
    for name in ("entrypoint.py", "bootstrap.sh"):
        copies[name] = Path(shutil.copyfile(required[name], dest_dir / name))
    copies["requirements.txt"] = dest_dir / "requirements.txt"
    copies["requirements.txt"].write_text(node_requirements(runtime, package_dir))
    return JobPackage(
        entry_script=copies["entrypoint.py"],
        py_files=build_zip(package_dir, dest_dir / f"{PACKAGE_NAME}.zip"),
        bootstrap=copies["bootstrap.sh"],
        requirements=copies["requirements.txt"],
    )
