"""A wheelhouse in S3 for the nodes' installs: no PyPI at bootstrap, every pin fixed.

The bootstrap action used to ``pip install -r requirements.txt`` from PyPI: a private subnet
without NAT fails, and only the top-level packages were pinned, so transitive versions drifted
from ``constraints.txt``. Instead, :func:`stage_wheelhouse` downloads (once) the wheels for the
nodes' interpreter and platforms with ``pip download -r spark_jobs/requirements.txt
-c constraints.txt`` (pip resolves the transitive dependencies, the constraints fix each
version they name) and uploads them under ``<prefix>/wheelhouse/<digest>/<arch>/``; the
bootstrap copies its architecture's folder and installs with ``--no-index --find-links``.

The digest covers both files, the Python version and the platforms: while they are
unchanged the staged wheelhouse is reused (its ``manifest.json``, written last, marks it
complete), and any edit of either file stages a new one. Built generically from whatever
the two files say. The download needs PyPI at stage time; it is injectable
(:data:`Downloader`) so tests stage fake wheels.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.staging.job_package import node_requirements

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

NODE_PYTHON_VERSION = "3.11"
"""EMR 7.x nodes' python3.11 (the job's interpreter, see ``include.emr.plan.NODE_PYTHON``)."""

ARCHES = ("x86_64", "aarch64")
"""Both EMR instance families: Intel/AMD (m5, c5, r5, ...) and Graviton (m6g, c7g, ...)."""

NODE_GLIBC_MINOR = 34
"""Amazon Linux 2023 (the OS of EMR 7.x) has glibc 2.34: manylinux_2_34 and older run."""

MANIFEST = "manifest.json"


def platform_tags(arch: str) -> list[str]:
    """pip ``--platform`` tags a node of ``arch`` can install (newest first).

    pip does not expand ``manylinux_2_X`` to older glibc tags by itself, so every tag from
    manylinux_2_34 down to manylinux2014 (2_17) is listed; x86_64 also takes 2010/1.
    """
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(NODE_GLIBC_MINOR, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def wheelhouse_digest(
    requirements: str, constraints: str, *, python_version: str = NODE_PYTHON_VERSION
) -> str:
    """Digest of everything that decides the wheel set (requirements, constraints, target)."""
    body = json.dumps(
        {
            "requirements": requirements,
            "constraints": constraints,
            "python": python_version,
            "platforms": {arch: platform_tags(arch) for arch in ARCHES},
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:24]


Downloader = Callable[[Path, Path, Path, str], None]
"""``download(requirements, constraints, dest_dir, arch)``: put every wheel in ``dest_dir``."""


def pip_download(requirements: Path, constraints: Path, dest: Path, arch: str) -> None:
    """Download binary wheels for the nodes with pip (needs PyPI)."""
    platforms = [arg for tag in platform_tags(arch) for arg in ("--platform", tag)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        NODE_PYTHON_VERSION,
        *platforms,
        "-r",
        str(requirements),
        "-c",
        str(constraints),
        "-d",
        str(dest),
    ]
    subprocess.run(command, check=True)


@dataclass(frozen=True)
class Wheelhouse:
    """Where a staged wheelhouse is, and what it holds."""

    uri: str
    """``s3://bucket/<prefix>/wheelhouse/<digest>`` (no trailing slash)."""
    digest: str
    reused: bool
    wheels: dict[str, list[str]]
    """Wheel file names per architecture."""
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "digest": self.digest,
            "reused": self.reused,
            "wheels": self.wheels,
            "bytes": self.bytes,
        }


def node_requirement_files(repo_root: Path, runtime: str, dest_dir: Path) -> tuple[Path, Path]:
    """The files the wheelhouse is built from: the nodes' requirements for ``runtime`` (the
    same text the bootstrap installs, written to ``dest_dir``) and the project lock."""

    requirements = Path(dest_dir) / "requirements.txt"
    requirements.write_text(node_requirements(runtime, repo_root / "spark_jobs"))
    return requirements, repo_root / "constraints.txt"


def digest_of_files(repo_root: Path, runtime: str) -> str:
    """:func:`wheelhouse_digest` of the node requirements of ``runtime`` and constraints."""

    return wheelhouse_digest(
        node_requirements(runtime, repo_root / "spark_jobs"),
        (repo_root / "constraints.txt").read_text(),
    )


def stage_wheelhouse(
    s3_hook: S3Hook,
    bucket: str,
    key_prefix: str,
    *,
    requirements: Path,
    constraints: Path,
    download: Downloader = pip_download,
    arches: tuple[str, ...] = ARCHES,
) -> Wheelhouse:
    """Make sure the wheelhouse for these files is in S3; reuse it when it already is.

    Wheels are uploaded first and ``manifest.json`` last, so a wheelhouse whose upload broke
    half-way has no manifest and is staged again. An architecture whose download yields no
    wheel is an error (nothing would install there).
    """
    digest = wheelhouse_digest(requirements.read_text(), constraints.read_text())
    base = key_prefix.rstrip("/")
    uri = f"s3://{bucket}/{base}"
    manifest_key = f"{base}/{MANIFEST}"
    if s3_hook.check_for_key(manifest_key, bucket_name=bucket):
        manifest = json.loads(s3_hook.read_key(manifest_key, bucket_name=bucket))
        if manifest.get("digest") == digest:
            return Wheelhouse(uri, digest, True, manifest["wheels"], int(manifest["bytes"]))
    wheels: dict[str, list[str]] = {}
    total = 0
    with tempfile.TemporaryDirectory(prefix="fruits-wheels-") as tmp:
        for arch in arches:
            dest = Path(tmp) / arch
            dest.mkdir()
            download(requirements, constraints, dest, arch)
            files = sorted(p for p in dest.iterdir() if p.suffix == ".whl")
            if not files:
                raise RuntimeError(f"no wheels downloaded for {arch} from {requirements}")
            for path in files:
                s3_hook.load_file(
                    str(path), f"{base}/{arch}/{path.name}", bucket_name=bucket, replace=True
                )
                total += path.stat().st_size
            wheels[arch] = [p.name for p in files]
    manifest = {"digest": digest, "python": NODE_PYTHON_VERSION, "wheels": wheels, "bytes": total}
    s3_hook.load_string(
        json.dumps(manifest, indent=2), manifest_key, bucket_name=bucket, replace=True
    )
    return Wheelhouse(uri, digest, False, wheels, total)


def root_volume_gib(wheel_bytes: int, *, base_gib: int = 15) -> int:
    """EBS root volume (GiB) for the install: the AMI's own use plus the wheels, unpacked.

    A wheel unpacks to ~3x its size, and the bootstrap keeps the copied wheels until the
    install ends: 4x the wheelhouse on top of ``base_gib``, rounded up, at least 32 GiB.
    """
    need = base_gib + -(-4 * wheel_bytes // 2**30)
    return max(32, need)


def check_fits(wheelhouse: Mapping[str, Any], volume_gib: int) -> None:
    """Raise when the staged wheelhouse would not fit the planned root volume."""
    need = root_volume_gib(int(wheelhouse["bytes"]))
    if need > volume_gib:
        raise ValueError(
            f"the wheelhouse ({wheelhouse['bytes'] / 2**30:.1f} GiB) needs a {need} GiB root "
            f"volume, the cluster plans {volume_gib} GiB"
        )
