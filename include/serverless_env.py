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
(:func:`include.job_package.node_requirements`), every version pinned by ``constraints.txt``,
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
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import REPO_ROOT

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

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
    from include.job_package import node_requirements

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


def build_packed_env(
    requirements: Path, constraints: Path, dest: Path, platform: str, python_version: str
) -> None:
    """Build the environment (see the module docstring). Filled in by the next commit."""
    raise NotImplementedError("the real build lands with Part B of issue 14")


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
) -> str:
    """Make sure the packed environment is in S3 (build it once); return its ``s3://`` URI.

    Reused when its manifest (written last) names the same digest and the archive is there;
    otherwise built, checked (:func:`archive_problems`), uploaded, then the manifest.
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
        if manifest.get("digest") == digest:
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
        hook.load_file(str(archive), archive_key, bucket_name=bucket, replace=True)
    manifest = {
        "digest": digest,
        "python": python_version,
        "platform": platform,
        "runtime": runtime,
        "recipe": BUILD_RECIPE,
        "bytes": size,
        "requirements": requirements,
    }
    hook.load_string(json.dumps(manifest, indent=2), manifest_key, bucket_name=bucket, replace=True)
    return uri
