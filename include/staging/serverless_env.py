"""The job's Python for EMR Serverless: a packed environment in S3, shipped with ``spark.archives``.

The public API (what the EMR Serverless DAG calls):

* ``stage_serverless_env(hook, *, bucket, prefix, runtime, arch, ...) -> str`` — make sure
  the packed environment for ``runtime`` and the application's ``arch`` (``X86_64`` |
  ``ARM64``, also ``x86_64`` | ``aarch64``) is in S3; returns its URI,
  ``s3://<bucket>/<prefix>/serverless-env/<digest>/pyspark_env.tar.gz``.
* ``spark_submit_conf(archive_uri) -> dict[str, str]`` — the four ``--conf`` pairs that make
  the driver and the executors run that environment's interpreter, as AWS documents it
  ("Using Python libraries with EMR Serverless"): ``spark.archives=<uri>#environment`` and
  ``PYSPARK_PYTHON`` / ``PYSPARK_DRIVER_PYTHON`` = ``./environment/bin/python``.

What is in the environment: what the executors need for the chosen runtime
(:func:`include.staging.job_package.node_requirements`), every version pinned by
``constraints.txt``,
without pyspark (EMR Serverless provides Spark). The digest covers the requirements, the
constraints, the Python version, the architecture and :data:`BUILD_RECIPE`; while they are
unchanged the staged archive is reused. ``manifest.json`` is written after the archive and
marks it complete: an archive without its manifest (an upload that broke half-way) is built
and uploaded again.

The build (:func:`build_packed_env`) is injectable (:data:`EnvBuilder`) so tests stage a fake
environment in milliseconds. See its docstring for how it is made and what it has and has not
been checked against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from platform import machine
from typing import TYPE_CHECKING

from include.config import REPO_ROOT
from include.staging.job_package import node_requirements
from include.staging.wheelhouse import NODE_GLIBC_MINOR, platform_tags

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

SERVERLESS_PYTHON_VERSION = "3.11"
"""The job's Python. EMR Serverless 7.x images (Amazon Linux 2023) default to 3.9, so the
environment ships its own 3.11 interpreter."""

ARCHITECTURES = {"X86_64": "x86_64", "ARM64": "aarch64", "x86_64": "x86_64", "aarch64": "aarch64"}
"""The application's ``architecture`` (or a machine name) -> the platform of the build."""

ARCHIVE_NAME = "pyspark_env.tar.gz"
ENV_ALIAS = "environment"
MANIFEST = "manifest.json"
BUILD_RECIPE = "uv-standalone-1"
"""Bumped when :func:`build_packed_env` changes what it puts in the archive."""

ENV_PYTHON = f"./{ENV_ALIAS}/bin/python"


def platform_of(arch: str) -> str:
    """``X86_64``/``ARM64`` (or ``x86_64``/``aarch64``) -> ``x86_64`` | ``aarch64``."""
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}: EMR Serverless runs X86_64 or ARM64"
        ) from None


def spark_submit_conf(archive_uri: str) -> dict[str, str]:
    """The confs that run the job with the packed environment's interpreter (AWS's shape)."""
    if not archive_uri.startswith("s3://") or not archive_uri.endswith(".tar.gz"):
        raise ValueError(f"the packed environment must be an s3://....tar.gz, got {archive_uri!r}")
    return {
        "spark.archives": f"{archive_uri}#{ENV_ALIAS}",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": ENV_PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": ENV_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
    }


def env_requirements(runtime: str, repo_root: Path = REPO_ROOT) -> str:
    """The executors' requirements for ``runtime``, without pyspark (Serverless has Spark)."""

    text = node_requirements(runtime, repo_root / "spark_jobs")
    kept = [
        line
        for line in text.splitlines()
        if line.split("==")[0].split("[")[0].strip().lower() not in ("pyspark", "py4j")
    ]
    return "\n".join(kept) + "\n"


def env_digest(
    requirements: str,
    constraints: str,
    *,
    arch: str,
    python_version: str = SERVERLESS_PYTHON_VERSION,
) -> str:
    """Digest of everything that decides the archive's contents."""
    body = json.dumps(
        {
            "requirements": requirements,
            "constraints": constraints,
            "python": python_version,
            "platform": platform_of(arch),
            "recipe": BUILD_RECIPE,
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:24]


EnvBuilder = Callable[[Path, Path, Path, str, str], None]
"""``build(requirements, constraints, dest_archive, platform, python_version)``: write the
packed environment (a tar.gz whose root holds ``bin/python``) to ``dest_archive``."""


BUILD_INFO = "BUILD-INFO.json"
"""What :func:`build_packed_env` records in the archive: the interpreter's origin, portable?"""


def build_info(archive: Path) -> dict[str, object]:
    """The archive's :data:`BUILD_INFO` (empty when it has none or cannot be read)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(BUILD_INFO)
            return json.loads(member.read()) if member else {}
    except (KeyError, tarfile.TarError, OSError, EOFError, ValueError):
        return {}


def archive_problems(archive: Path, *, packages: tuple[str, ...] = ()) -> list[str]:
    """What makes ``archive`` unusable as ``spark.archives`` env (empty: fine): not a tar.gz,
    no ``bin/python`` at its root, or one of ``packages`` (import names) missing."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = {name.lstrip("./") for name in tar.getnames()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        return [f"{archive.name} is not a readable tar.gz ({exc})"]
    problems = []
    if "bin/python" not in names:
        problems.append(f"{archive.name} has no bin/python at its root")
    site = f"lib/python{SERVERLESS_PYTHON_VERSION}/site-packages/"
    for package in packages:
        if not any(name.startswith(f"{site}{package}/") for name in names):
            problems.append(f"{archive.name} lacks the package {package!r} (under {site})")
    return problems


PYTHON_HOME_ENV = "FRUITS_SERVERLESS_PYTHON_{platform}"
"""Env var naming the CPython home to ship for a platform (``..._X86_64``, ``..._AARCH64``)."""

_STDLIB_SKIP = frozenset(
    {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "__pycache__"}
)


def _installed(uv: str, request: str) -> Path | None:
    """The home of a uv-managed (python-build-standalone) CPython matching ``request``."""
    found = subprocess.run(
        [uv, "python", "find", "--managed-python", request],
        capture_output=True,
        text=True,
        check=False,
    )
    path = Path(found.stdout.strip())
    return path.parent.parent if found.returncode == 0 and path.is_file() else None


def _uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


def python_home(platform: str, python_version: str) -> tuple[Path, bool]:
    """(CPython home to ship, portable?) for ``platform``.

    In order: ``$FRUITS_SERVERLESS_PYTHON_<PLATFORM>`` (e.g. an unpacked python-build-standalone
    ``install_only`` build); a uv-managed python-build-standalone CPython
    (``uv python install cpython-3.11-linux-aarch64-gnu``), both relocatable and built for
    glibc 2.17, so they run on Amazon Linux 2023; else, for this machine's own platform only,
    this interpreter's home, which is *not* portable (its glibc and library paths are this
    machine's): good for the emulator and tests, not for AWS.
    """
    named = os.environ.get(PYTHON_HOME_ENV.format(platform=platform.upper()), "").strip()
    if named:
        home = Path(named).expanduser()
        if not (home / "bin" / f"python{python_version}").is_file():
            raise RuntimeError(f"{named} has no bin/python{python_version}")
        return home, True
    uv = _uv()
    if uv:
        home = _installed(uv, f"cpython-{python_version}-linux-{platform}-gnu")
        if home is not None:
            return home, True
    here = "aarch64" if machine() in ("aarch64", "arm64") else machine()
    if platform == here and sys.version.startswith(python_version + "."):
        return Path(sys.base_prefix), False
    raise RuntimeError(
        f"no CPython {python_version} for {platform} to ship: install a python-build-standalone "
        f"one (uv python install cpython-{python_version}-linux-{platform}-gnu) or set "
        f"{PYTHON_HOME_ENV.format(platform=platform.upper())} to its home"
    )


def _copy_python(home: Path, root: Path, python_version: str) -> None:
    """bin/python3.X (+ python, python3 links), libpython, the stdlib without its tests."""
    (root / "bin").mkdir(parents=True)
    binary = root / "bin" / f"python{python_version}"
    shutil.copy2((home / "bin" / f"python{python_version}").resolve(), binary)
    for alias in ("python", "python3"):
        (root / "bin" / alias).symlink_to(binary.name)
    (root / "lib").mkdir()
    for library in (home / "lib").glob(f"libpython{python_version}*.so*"):
        shutil.copy2(library, root / "lib" / library.name, follow_symlinks=False)
    stdlib = home / "lib" / f"python{python_version}"
    shutil.copytree(
        stdlib,
        root / "lib" / f"python{python_version}",
        symlinks=True,
        ignore=lambda folder, names: [
            n for n in names if n in _STDLIB_SKIP or n == "site-packages" or n.endswith(".pyc")
        ],
    )


def _install(requirements: Path, constraints: Path, target: Path, platform: str, version: str):
    """The wheels for ``platform`` into ``target`` (uv when there is one, else pip)."""
    uv = _uv()
    if uv:
        command = [
            uv, "pip", "install", "--quiet", "--target", str(target), "--python-version", version,
            "--python-platform", f"{platform}-manylinux_2_{NODE_GLIBC_MINOR}",
            "--only-binary", ":all:", "-r", str(requirements), "-c", str(constraints),
        ]  # fmt: skip
    else:
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
            "--python-version", version, "--implementation", "cp", "--only-binary=:all:",
            *[a for tag in platform_tags(platform) for a in ("--platform", tag)],
            "-r", str(requirements), "-c", str(constraints),
        ]  # fmt: skip
    subprocess.run(command, check=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: absolute shebangs


def build_packed_env(
    requirements: Path, constraints: Path, dest: Path, platform: str, python_version: str
) -> None:
    """Build the packed environment for ``platform`` into ``dest`` (a tar.gz), without Docker.

    AWS's recipe ("Using different Python versions with EMR Serverless") builds Python in an
    ``amazonlinux:2023`` container, makes a ``venv --copies``, installs, adds the stdlib and
    packs it with venv-pack, so that the archive carries its own interpreter. This does the
    same without a container: the archive's root is a whole CPython home,
    ``bin/python3.11`` (+ ``python``), ``lib/libpython*``, the stdlib (no tests) and
    ``lib/python3.11/site-packages`` filled by ``uv pip install --target --python-platform
    <platform>-manylinux_2_34 --only-binary :all:`` (pip's ``--platform`` tags without uv),
    pinned by the constraints. Python finds its home from the binary's place, so no venv (and
    no venv-pack) is needed. The interpreter comes from :func:`python_home`.

    Limits (say them plainly): only binary wheels install (a package without a manylinux
    wheel for the platform fails the build); this was run and tested on this machine only
    (x86_64, the emulator checks the archive's layout); no archive from it has run on real
    EMR Serverless yet; with this machine's own interpreter (no python-build-standalone at
    hand) the archive is for this machine only, and the manifest says ``portable: false``.
    """
    home, portable = python_home(platform, python_version)
    with tempfile.TemporaryDirectory(prefix="fruits-env-build-") as tmp:
        root = Path(tmp) / "env"
        _copy_python(home, root, python_version)
        site = root / "lib" / f"python{python_version}" / "site-packages"
        site.mkdir(parents=True, exist_ok=True)
        _install(requirements, constraints, site, platform, python_version)
        (root / BUILD_INFO).write_text(
            json.dumps({"python_home": str(home), "platform": platform, "portable": portable})
        )
        partial = dest.with_name(dest.name + ".part")
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for path in sorted(root.rglob("*")):
                if "__pycache__" not in path.parts:
                    tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
        partial.replace(dest)


def stage_serverless_env(
    hook: S3Hook,
    *,
    bucket: str,
    prefix: str,
    runtime: str,
    arch: str,
    build: EnvBuilder = build_packed_env,
    repo_root: Path = REPO_ROOT,
    python_version: str = SERVERLESS_PYTHON_VERSION,
    allow_local_python: bool = False,
) -> str:
    """Make sure the packed environment is in S3 (build it once); return its ``s3://`` URI.

    Reused when its manifest (written last) names the same digest and the archive is there;
    otherwise built, checked (:func:`archive_problems`), uploaded, then the manifest.
    An environment that ships this machine's own Python (``portable: false``: it runs here
    and in the emulator, not on EMR Serverless) is refused — not uploaded, and a staged one
    not reused — unless ``allow_local_python``
    (:func:`include.config.serverless_local_python_allowed`).
    """
    platform = platform_of(arch)
    requirements = env_requirements(runtime, repo_root)
    constraints_text = (repo_root / "constraints.txt").read_text()
    digest = env_digest(
        requirements, constraints_text, arch=platform, python_version=python_version
    )
    base = f"{prefix.strip('/')}/serverless-env/{digest}".lstrip("/")
    archive_key, manifest_key = f"{base}/{ARCHIVE_NAME}", f"{base}/{MANIFEST}"
    uri = f"s3://{bucket}/{archive_key}"
    if hook.check_for_key(manifest_key, bucket_name=bucket) and hook.check_for_key(
        archive_key, bucket_name=bucket
    ):
        manifest = json.loads(hook.read_key(manifest_key, bucket_name=bucket))
        if manifest.get("digest") == digest and (
            allow_local_python or manifest.get("portable") is not False
        ):
            return uri
    with tempfile.TemporaryDirectory(prefix="fruits-serverless-env-") as tmp:
        req_file, con_file = Path(tmp) / "requirements.txt", Path(tmp) / "constraints.txt"
        req_file.write_text(requirements)
        con_file.write_text(constraints_text)
        archive = Path(tmp) / ARCHIVE_NAME
        build(req_file, con_file, archive, platform, python_version)
        if not archive.is_file():
            raise RuntimeError(f"the {platform} environment build wrote no {ARCHIVE_NAME}")
        problems = archive_problems(archive)
        if problems:
            raise RuntimeError(f"the {platform} environment is unusable: {'; '.join(problems)}")
        size = archive.stat().st_size
        portable = build_info(archive).get("portable")
        if portable is False and not allow_local_python:
            raise RuntimeError(
                f"the {platform} environment would ship this machine's own Python, which does "
                "not run on EMR Serverless: install a python-build-standalone CPython "
                f"(uv python install cpython-{python_version}-linux-{platform}-gnu) or set "
                f"{PYTHON_HOME_ENV.format(platform=platform.upper())} to one; nothing was "
                "uploaded (FRUITS_SERVERLESS_LOCAL_PYTHON=true allows it for the emulator)"
            )
        if portable is False:
            log.warning(
                "the %s environment ships this machine's own Python: it runs here (and in the "
                "emulator), not on EMR Serverless; for AWS give it a python-build-standalone "
                "CPython (see include/staging/serverless_env.python_home)",
                platform,
            )
        hook.load_file(str(archive), archive_key, bucket_name=bucket, replace=True)
    manifest = {
        "digest": digest,
        "python": python_version,
        "platform": platform,
        "runtime": runtime,
        "recipe": BUILD_RECIPE,
        "bytes": size,
        "portable": portable,
        "requirements": requirements,
    }
    hook.load_string(json.dumps(manifest, indent=2), manifest_key, bucket_name=bucket, replace=True)
    return uri
