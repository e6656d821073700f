"""The S3 wheelhouse: keyed by a digest, reused while unchanged, installed with --no-index.

No test downloads: the downloader is injected and writes fake wheels.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import boto3
import pytest

from include.config import REPO_ROOT
from include.staging.wheelhouse import (
    ARCHES,
    check_fits,
    digest_of_files,
    platform_tags,
    root_volume_gib,
    stage_wheelhouse,
    wheelhouse_digest,
)

REGION = "eu-west-1"
BUCKET = "fruits-wheels"


@pytest.fixture
def files(tmp_path):
    requirements = tmp_path / "requirements.txt"
    constraints = tmp_path / "constraints.txt"
    requirements.write_text("onnxruntime==1.32.0\npillow==13.0.0\n")
    constraints.write_text("numpy==2.4.6\nonnxruntime==1.32.0\npillow==13.0.0\n")
    return requirements, constraints


class FakeDownloader:
    """Writes one fake wheel per requirement + constraint pin, per architecture."""

    def __init__(self, *, empty_for: str | None = None) -> None:
        self.calls: list[str] = []
        self.empty_for = empty_for

    def __call__(self, requirements: Path, constraints: Path, dest: Path, arch: str) -> None:
        self.calls.append(arch)
        if arch == self.empty_for:
            return
        for line in constraints.read_text().split():
            name, version = line.split("==")
            (dest / f"{name}-{version}-cp311-cp311-manylinux_2_28_{arch}.whl").write_bytes(
                b"wheel" * 10
            )


def _keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _stage(s3_hook, files, download):
    requirements, constraints = files
    return stage_wheelhouse(
        s3_hook,
        BUCKET,
        "p/wheelhouse/x",
        requirements=requirements,
        constraints=constraints,
        download=download,
    )


def test_digest_changes_with_either_file_and_not_otherwise(files):
    requirements, constraints = files
    base = wheelhouse_digest(requirements.read_text(), constraints.read_text())
    assert base == wheelhouse_digest(requirements.read_text(), constraints.read_text())
    assert base != wheelhouse_digest("onnxruntime==1.33.0\n", constraints.read_text())
    assert base != wheelhouse_digest(requirements.read_text(), "numpy==2.4.7\n")
    assert base != wheelhouse_digest(
        requirements.read_text(), constraints.read_text(), python_version="3.12"
    )
    assert len(digest_of_files(REPO_ROOT, "litert")) == 24  # the repository's own files
    # Each runtime's nodes get their own wheel set.
    assert digest_of_files(REPO_ROOT, "litert") != digest_of_files(REPO_ROOT, "keras")


def test_platform_tags_cover_the_nodes_glibc_and_both_arches():
    x86 = platform_tags("x86_64")
    assert x86[0] == "manylinux_2_34_x86_64"  # Amazon Linux 2023
    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(x86)
    arm = platform_tags("aarch64")
    assert "manylinux2014_aarch64" in arm
    assert all(tag.endswith("_aarch64") for tag in arm)
    assert ARCHES == ("x86_64", "aarch64")


def test_stage_uploads_wheels_per_arch_then_manifest_and_reuses(files, s3_hook):
    download = FakeDownloader()
    first = _stage(s3_hook, files, download)
    assert not first.reused
    assert download.calls == ["x86_64", "aarch64"]
    keys = _keys()
    assert "p/wheelhouse/x/manifest.json" in keys
    assert (
        "p/wheelhouse/x/aarch64/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl" in keys
    )
    assert len([k for k in keys if k.endswith(".whl")]) == 6  # 3 pins x 2 arches
    manifest = json.loads(
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=BUCKET, Key="p/wheelhouse/x/manifest.json")["Body"]
        .read()
    )
    assert manifest["digest"] == first.digest
    assert manifest["bytes"] == first.bytes == 6 * 50

    again = FakeDownloader()
    second = _stage(s3_hook, files, again)
    assert second.reused
    assert again.calls == []  # nothing downloaded or uploaded again
    assert second.wheels == first.wheels


def test_half_uploaded_wheelhouse_without_manifest_is_staged_again(files, s3_hook):
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key="p/wheelhouse/x/x86_64/partial.whl", Body=b"cut"
    )
    download = FakeDownloader()
    result = _stage(s3_hook, files, download)
    assert not result.reused
    assert download.calls == list(ARCHES)


def test_an_arch_without_wheels_fails_and_writes_no_manifest(files, s3_hook):
    requirements, constraints = files
    with pytest.raises(RuntimeError, match="no wheels downloaded for aarch64"):
        stage_wheelhouse(
            s3_hook,
            BUCKET,
            "p/wheelhouse/x",
            requirements=requirements,
            constraints=constraints,
            download=FakeDownloader(empty_for="aarch64"),
        )
    assert "p/wheelhouse/x/manifest.json" not in _keys()


def test_root_volume_fits_the_install():
    assert root_volume_gib(0) == 32
    assert root_volume_gib(5 * 2**30) == 15 + 20
    check_fits({"bytes": 2**30}, 32)
    with pytest.raises(ValueError, match="needs a 35 GiB root volume"):
        check_fits({"bytes": 5 * 2**30}, 32)


def test_plan_points_the_bootstrap_at_the_wheelhouse(tmp_path):
    from include.config import PipelineConfig
    from include.emr.plan import build_run_plan
    from include.params.cluster import emr_settings_from_params

    config = PipelineConfig(bucket="b", prefix="p", results_dir=tmp_path)
    settings = emr_settings_from_params({})
    plan = build_run_plan(settings, config, dag_id="d", run_id="r", wheelhouse_digest="abc")
    (action,) = plan["job_flow_overrides"]["BootstrapActions"]
    assert action["ScriptBootstrapAction"]["Args"][1] == "s3://b/p/wheelhouse/abc"
    assert plan["wheelhouse"]["key_prefix"] == "p/wheelhouse/abc"
    assert plan["job_flow_overrides"]["EbsRootVolumeSize"] == 32
    online = build_run_plan(settings, config, dag_id="d", run_id="r")
    assert online["wheelhouse"] is None
    assert (
        len(online["job_flow_overrides"]["BootstrapActions"][0]["ScriptBootstrapAction"]["Args"])
        == 1
    )


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_bootstrap_installs_from_the_wheelhouse_with_no_index(tmp_path):
    """Run the real bootstrap.sh with stand-ins for aws, sudo and python3.11 on PATH."""
    s3_root = tmp_path / "s3"
    arch = os.uname().machine
    wheels = s3_root / "b" / "p" / "wheelhouse" / "abc" / arch
    wheels.mkdir(parents=True)
    (wheels / "pillow-13.0.0-cp311-cp311-manylinux_2_28.whl").write_bytes(b"w")
    (s3_root / "b" / "p" / "requirements.txt").write_text("pillow==13.0.0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    # aws s3 cp [--only-show-errors] [--recursive] SRC DEST: s3://x maps to s3_root/x.
    _executable(
        bin_dir / "aws",
        f'args=(); for a in "$@"; do case "$a" in --*) ;; *) args+=("$a");; esac; done\n'
        f'src="{s3_root}/${{args[2]#s3://}}"; dest="${{args[3]}}"\n'
        'if [ -d "$src" ]; then mkdir -p "$dest"; cp -r "$src"/. "$dest"; '
        'else cp "$src" "$dest"; fi\n',
    )
    _executable(bin_dir / "sudo", '"$@"\n')
    _executable(
        bin_dir / "python3.11",
        f'echo "$@" >> "{calls}"\n'
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "install" ]; then\n'
        '  for a in "$@"; do case "$prev" in --find-links) ls "$a" >> '
        f'"{calls}";; esac; '
        'prev="$a"; done\nfi\n',
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        [
            "bash",
            str(REPO_ROOT / "spark_jobs" / "bootstrap.sh"),
            "s3://b/p/requirements.txt",
            "s3://b/p/wheelhouse/abc",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    log = calls.read_text()
    install = next(line for line in log.splitlines() if " pip install " in f" {line} ")
    assert "--no-index" in install
    assert "--find-links" in install
    assert "pillow-13.0.0-cp311-cp311-manylinux_2_28.whl" in log  # this arch's wheels copied


def _dist(site: Path, name: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    (info / "METADATA").write_text("\n".join([*lines, *(f"Requires-Dist: {r}" for r in requires)]))


def _run_bootstrap_check(tmp_path: Path, requirements: str) -> subprocess.CompletedProcess:
    """bootstrap.sh with a stand-in aws and sudo; python3.11 is this interpreter (its real
    packages, plus fake ones in ``site``) except that ``pip install`` does nothing."""
    import sys
    from importlib import metadata

    s3_root = tmp_path / "s3"
    (s3_root / "b").mkdir(parents=True)
    pillow = metadata.version("pillow")
    (s3_root / "b" / "requirements.txt").write_text(requirements.format(pillow=pillow))
    site = tmp_path / "site"
    _dist(site, "unused-broken", "not-there>=99")  # what `pip check` fails on
    _dist(site, "jobdep", "pillow")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "aws", f'cp "{s3_root}/${{4#s3://}}" "$5"\n')
    _executable(bin_dir / "sudo", '"$@"\n')
    _executable(
        bin_dir / "python3.11",
        f'if [ "$1 $2 $3" = "-m pip install" ]; then exit 0; fi\nexec "{sys.executable}" "$@"\n',
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(site),
    }
    return subprocess.run(
        ["bash", str(REPO_ROOT / "spark_jobs" / "bootstrap.sh"), "s3://b/requirements.txt"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_bootstrap_check_ignores_packages_the_job_does_not_use(tmp_path):
    """A node package with a broken requirement (``pip check`` fails on it) that the job's
    requirements do not reach does not fail the bootstrap."""
    result = _run_bootstrap_check(tmp_path, "pillow=={pillow}\njobdep==1.0  # needs pillow\n")
    assert result.returncode == 0, result.stderr
    assert "job packages consistent" in result.stdout
    assert "job dependencies ready" in result.stdout


@pytest.mark.parametrize(
    ("requirements", "problem"),
    [
        ("pillow==0.1\n", "pillow==0.1: "),  # the wrong version installed
        ("jobdep==1.0\nunused-broken==1.0\n", "not-there>=99: not installed"),  # transitive
    ],
)
def test_bootstrap_check_fails_on_the_jobs_own_requirements(tmp_path, requirements, problem):
    result = _run_bootstrap_check(tmp_path, requirements)
    assert result.returncode != 0
    assert "job requirements not satisfied" in result.stderr
    assert problem in result.stderr
