"""The packed Python environment for EMR Serverless: digest, reuse, half uploads, bad builds.

The build is injected (a fake writes a tiny tar.gz in milliseconds), except in the one slow
test that builds a real environment for this machine and runs its interpreter.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import boto3
import pytest

from include.config import REPO_ROOT
from include.staging.serverless_env import (
    ARCHIVE_NAME,
    archive_problems,
    build_info,
    build_packed_env,
    env_digest,
    env_requirements,
    platform_of,
    python_home,
    spark_submit_conf,
    stage_serverless_env,
)

REGION = "eu-west-1"
BUCKET = "fruits-env"


@pytest.fixture
def repo(tmp_path) -> Path:
    """A copy of the files the environment is made from (tests edit them)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "spark_jobs", root / "spark_jobs", ignore=lambda *_: ["tests"])
    shutil.copy(REPO_ROOT / "constraints.txt", root / "constraints.txt")
    return root


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


class FakeBuild:
    """Writes a small env per call; ``python=False`` leaves bin/python out."""

    def __init__(
        self, *, python: bool = True, fail_for: str | None = None, portable: bool | None = None
    ) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.python = python
        self.fail_for = fail_for
        self.portable = portable

    def __call__(self, requirements, constraints, dest, platform, version) -> None:
        self.calls.append((platform, version, requirements.read_text()))
        if platform == self.fail_for:
            raise RuntimeError(f"no CPython {version} for {platform} to ship")
        members = {"lib/python3.11/site-packages/numpy/__init__.py": b""}
        if self.python:
            members["bin/python"] = b"#!"
        if self.portable is not None:
            members["BUILD-INFO.json"] = json.dumps({"portable": self.portable}).encode()
        dest.write_bytes(_tar(members))


def _keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _stage(s3_hook, repo, build, arch="X86_64", runtime="litert", **more) -> str:
    return stage_serverless_env(
        s3_hook,
        bucket=BUCKET,
        prefix="p",
        runtime=runtime,
        arch=arch,
        build=build,
        repo_root=repo,
        **more,
    )


def test_an_env_of_this_machines_python_is_refused_unless_allowed(s3_hook, repo):
    """Such an env runs here and in the emulator, never on EMR Serverless."""
    local = FakeBuild(portable=False)
    with pytest.raises(RuntimeError, match="does not run on EMR Serverless") as refused:
        _stage(s3_hook, repo, local)
    assert "uv python install cpython-3.11-linux-x86_64-gnu" in str(refused.value)
    assert _keys() == []  # nothing uploaded
    uri = _stage(s3_hook, repo, local, allow_local_python=True)  # the emulator's setting
    assert len(local.calls) == 2
    # The staged local env is reused where allowed, and never where it is not: a portable
    # build replaces it under the same digest.
    assert _stage(s3_hook, repo, local, allow_local_python=True) == uri
    assert len(local.calls) == 2
    portable = FakeBuild(portable=True)
    assert _stage(s3_hook, repo, portable) == uri
    assert len(portable.calls) == 1
    manifest_key = next(k for k in _keys() if k.endswith("manifest.json"))
    manifest = json.loads(s3_hook.read_key(manifest_key, bucket_name=BUCKET))
    assert manifest["portable"] is True


def test_spark_submit_conf_is_awss_shape():
    uri = "s3://b/p/serverless-env/d/pyspark_env.tar.gz"
    assert spark_submit_conf(uri) == {
        "spark.archives": f"{uri}#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
    }
    for bad in ("/local/env.tar.gz", "s3://b/env.zip"):
        with pytest.raises(ValueError, match=r"s3://\.\.\.\.tar\.gz"):
            spark_submit_conf(bad)


def test_architectures_map_to_build_platforms():
    assert platform_of("X86_64") == platform_of("x86_64") == "x86_64"
    assert platform_of("ARM64") == platform_of("aarch64") == "aarch64"
    with pytest.raises(ValueError, match="X86_64 or ARM64"):
        platform_of("ppc64le")


def test_requirements_are_the_runtimes_without_pyspark(repo):
    (repo / "spark_jobs" / "requirements.txt").write_text("numpy==2.4.6\npyspark==3.5.6\n")
    text = env_requirements("onnx", repo)
    assert "numpy==2.4.6" in text
    assert "onnxruntime==1.32.0" in text  # the runtime's own file
    assert "pyspark==" not in text
    assert "tensorflow" not in env_requirements("litert", REPO_ROOT)


def test_digest_changes_with_what_decides_the_archive():
    base = env_digest("numpy==2.4.6\n", "numpy==2.4.6\n", arch="X86_64")
    assert base == env_digest("numpy==2.4.6\n", "numpy==2.4.6\n", arch="x86_64")
    assert base != env_digest("numpy==2.4.7\n", "numpy==2.4.6\n", arch="X86_64")
    assert base != env_digest("numpy==2.4.6\n", "numpy==2.4.7\n", arch="X86_64")
    assert base != env_digest("numpy==2.4.6\n", "numpy==2.4.6\n", arch="ARM64")
    assert base != env_digest(
        "numpy==2.4.6\n", "numpy==2.4.6\n", arch="X86_64", python_version="3.12"
    )


def test_stage_uploads_archive_then_manifest_and_reuses_it(s3_hook, repo):
    build = FakeBuild()
    uri = _stage(s3_hook, repo, build)
    assert uri.startswith(f"s3://{BUCKET}/p/serverless-env/")
    assert uri.endswith(f"/{ARCHIVE_NAME}")
    digest = uri.split("/")[-2]
    assert _keys() == [
        f"p/serverless-env/{digest}/manifest.json",
        f"p/serverless-env/{digest}/{ARCHIVE_NAME}",
    ]
    assert [(p, v) for p, v, _ in build.calls] == [("x86_64", "3.11")]
    assert "pandas==" in build.calls[0][2]
    assert "pyspark==" not in build.calls[0][2]
    manifest = json.loads(
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=BUCKET, Key=f"p/serverless-env/{digest}/manifest.json")["Body"]
        .read()
    )
    assert manifest["digest"] == digest
    assert manifest["platform"] == "x86_64"

    again = FakeBuild()
    assert _stage(s3_hook, repo, again) == uri
    assert again.calls == []  # reused: nothing built or uploaded

    arm = FakeBuild()
    arm_uri = _stage(s3_hook, repo, arm, arch="ARM64")
    assert arm_uri != uri
    assert [p for p, _, _ in arm.calls] == ["aarch64"]

    (repo / "constraints.txt").write_text((repo / "constraints.txt").read_text() + "\n# edit\n")
    changed = FakeBuild()
    assert _stage(s3_hook, repo, changed) != uri  # a new digest: built again
    assert len(changed.calls) == 1


def test_half_uploaded_env_without_manifest_is_built_again(s3_hook, repo):
    uri = _stage(s3_hook, repo, FakeBuild())
    digest = uri.split("/")[-2]
    s3 = boto3.client("s3", region_name=REGION)
    s3.delete_object(Bucket=BUCKET, Key=f"p/serverless-env/{digest}/manifest.json")
    rebuild = FakeBuild()
    assert _stage(s3_hook, repo, rebuild) == uri
    assert len(rebuild.calls) == 1
    assert f"p/serverless-env/{digest}/manifest.json" in _keys()


def test_manifest_without_its_archive_is_built_again(s3_hook, repo):
    uri = _stage(s3_hook, repo, FakeBuild())
    boto3.client("s3", region_name=REGION).delete_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
    rebuild = FakeBuild()
    _stage(s3_hook, repo, rebuild)
    assert len(rebuild.calls) == 1
    assert uri.split("/", 3)[3] in _keys()


def test_a_build_without_bin_python_uploads_nothing(s3_hook, repo):
    with pytest.raises(RuntimeError, match="has no bin/python at its root"):
        _stage(s3_hook, repo, FakeBuild(python=False))
    assert _keys() == []


def test_an_architecture_that_cannot_be_built_fails_clearly(s3_hook, repo):
    with pytest.raises(RuntimeError, match=r"no CPython 3\.11 for aarch64"):
        _stage(s3_hook, repo, FakeBuild(fail_for="aarch64"), arch="ARM64")
    assert _keys() == []
    with pytest.raises(ValueError, match="X86_64 or ARM64"):
        _stage(s3_hook, repo, FakeBuild(), arch="POWER")


def test_python_home_refuses_a_home_without_the_interpreter(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_SERVERLESS_PYTHON_AARCH64", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"has no bin/python3\.11"):
        python_home("aarch64", "3.11")


def test_archive_problems_name_what_is_missing(tmp_path):
    good = tmp_path / "good.tar.gz"
    good.write_bytes(_tar({"bin/python": b"", "lib/python3.11/site-packages/PIL/x.py": b""}))
    assert archive_problems(good, packages=("PIL",)) == []
    assert archive_problems(good, packages=("numpy",)) == [
        "good.tar.gz lacks the package 'numpy' (under lib/python3.11/site-packages/)"
    ]
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"zip?")
    assert "is not a readable tar.gz" in archive_problems(bad)[0]


@pytest.mark.slow
def test_real_build_for_this_machine_holds_python_and_the_packages(tmp_path):
    """A real env from a tiny requirement set (offline from uv's cache when warm)."""
    import platform

    arch = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pillow==13.0.0\n")
    archive = tmp_path / ARCHIVE_NAME
    build_packed_env(requirements, REPO_ROOT / "constraints.txt", archive, arch, "3.11")
    assert archive_problems(archive, packages=("PIL",)) == []
    info = build_info(archive)
    assert info["platform"] == arch
    assert isinstance(info["portable"], bool)  # False with this machine's own interpreter
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "environment", filter="tar")
    assert "lib/python3.11/os.py" in names  # the stdlib travels with the interpreter
    assert not [n for n in names if "/test/" in n or n.endswith(".pyc")]
    python = tmp_path / "environment" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", "import sys, PIL; print(sys.prefix); print(PIL.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(tmp_path / "environment"), "13.0.0"]
