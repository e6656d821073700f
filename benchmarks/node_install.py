"""What the EMR bootstrap installs on every node, per runtime: wheels, download size and time.

For each runtime, the staged node requirements (``include.staging.job_package.node_requirements``:
``spark_jobs/requirements.txt`` + ``requirements-<runtime>.txt``) are resolved for the nodes
(Python 3.11, manylinux, ``--arch``) within ``constraints.txt`` with uv, then every wheel
is downloaded with pip (``--only-binary :all:``, no dependencies of its own) into an empty
folder. ``keras`` is what every node installed before the fast runtimes (TensorFlow +
Keras + h5py + the base). Needs the package index.

    python benchmarks/node_install.py [--arch x86_64|aarch64] [--json out.json]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._output import emit
from include.staging.job_package import node_requirements

REPO = Path(__file__).resolve().parent.parent
# Amazon Linux 2023 has glibc 2.34: every manylinux tag up to it is installable.
MANYLINUX = [f"manylinux_2_{minor}" for minor in range(17, 35)] + ["manylinux2014"]


def resolve(runtime: str, arch: str, tmp: Path) -> list[str]:
    reqs = tmp / f"{runtime}.in"
    reqs.write_text(node_requirements(runtime))
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    cmd = [uv, "pip", "compile", "--quiet", "--no-build", "--no-header", "--no-annotate"]
    cmd += ["--python-version", "3.11", "--python-platform", f"{arch}-manylinux_2_28"]
    cmd += [str(reqs), "-c", str(REPO / "constraints.txt")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [line.strip() for line in done.stdout.splitlines() if "==" in line]


def download(pins: list[str], arch: str, dest: Path) -> float:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest)]
    cmd += ["--only-binary", ":all:", "--python-version", "3.11", "--implementation", "cp"]
    for tag in MANYLINUX:
        cmd += ["--platform", f"{tag}_{arch}"]
    cmd += ["--platform", "any", *pins]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("x86_64", "aarch64"), default="x86_64")
    parser.add_argument("--runtimes", nargs="+", default=["litert", "onnx", "keras"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="fruits-node-install-") as tmp_name:
        tmp = Path(tmp_name)
        for runtime in args.runtimes:
            pins = resolve(runtime, args.arch, tmp)
            dest = tmp / runtime
            seconds = download(pins, args.arch, dest)
            wheels = sorted(dest.iterdir())
            rows[runtime] = {
                "packages": len(pins),
                "wheels": len(wheels),
                "download_mb": round(sum(w.stat().st_size for w in wheels) / 1e6, 1),
                "download_s": round(seconds, 1),
                "largest": sorted(
                    ((w.name.split("-")[0], round(w.stat().st_size / 1e6, 1)) for w in wheels),
                    key=lambda item: -item[1],
                )[:3],
            }
    figures = {"arch": args.arch, "python": "3.11", "runtimes": rows}
    summary = "\n".join(
        f"{name:7s} {r['packages']:3d} packages  {r['download_mb']:7.1f} MB  "
        f"{r['download_s']:5.1f} s download  largest {r['largest']}"
        for name, r in rows.items()
    )
    emit(figures, summary, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
