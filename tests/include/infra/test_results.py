"""download-results: a finished run lands complete in the destination, or nothing does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.include.infra.conftest import BUCKET, REGION

RUN = "manual__2026-01-10T12-00-00"
FILES = {
    "metrics.json": b'{"run_id": "x"}',
    "features/part-00000.parquet": b"PAR1 features",
    "pca/part-00000.parquet": b"PAR1 pca",
    "cluster.json": b"{}",
    "_SUCCESS": b"",
}


@pytest.fixture
def results_bucket(aws, s3):
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})

    def put_run(run_id: str, files: dict[str, bytes]) -> None:
        for name, body in files.items():
            s3.put_object(Bucket=BUCKET, Key=f"fruits/results/{run_id}/{name}", Body=body)

    return put_run


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_download_a_finished_run(results_bucket, cli, tmp_path):
    results_bucket(RUN, FILES)
    results_bucket("other-run", {"metrics.json": b"other", "_SUCCESS": b""})
    result = cli("download-results", "--bucket", BUCKET, "--run-id", RUN)
    assert result.code == 0, result.err
    dest = tmp_path / "results" / "fruits_emr_pipeline" / RUN  # FRUITS_RESULTS_DIR/<dag>/<run>
    assert _tree(dest) == FILES
    assert f"{len(FILES)} files" in result.out
    assert [p.name for p in dest.parent.iterdir()] == [RUN]  # no temporary folder left


def test_download_refuses_a_run_without_success_marker(results_bucket, cli, tmp_path):
    unfinished = {k: v for k, v in FILES.items() if k != "_SUCCESS"}
    results_bucket(RUN, unfinished)
    dest = tmp_path / "out"
    result = cli("download-results", "--bucket", BUCKET, "--run-id", RUN, "--dest", str(dest))
    assert result.code == 2
    assert "has no _SUCCESS" in result.err
    assert not dest.exists()
    allowed = cli(
        "download-results",
        "--bucket",
        BUCKET,
        "--run-id",
        RUN,
        "--dest",
        str(dest),
        "--allow-incomplete",
    )
    assert allowed.code == 0, allowed.err
    assert _tree(dest) == unfinished


def test_download_does_not_overwrite_without_the_flag(results_bucket, cli, tmp_path):
    results_bucket(RUN, FILES)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.txt").write_text("from an older download")
    result = cli("download-results", "--bucket", BUCKET, "--run-id", RUN, "--dest", str(dest))
    assert result.code == 2
    assert "--overwrite" in result.err
    assert _tree(dest) == {"stale.txt": b"from an older download"}
    result = cli(
        "download-results", "--bucket", BUCKET, "--run-id", RUN, "--dest", str(dest), "--overwrite"
    )
    assert result.code == 0, result.err
    assert _tree(dest) == FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_download_of_an_unknown_run_is_a_clear_error(results_bucket, cli, tmp_path):
    result = cli(
        "download-results", "--bucket", BUCKET, "--run-id", "nope", "--dest", str(tmp_path / "x")
    )
    assert result.code == 2
    assert f"no results at s3://{BUCKET}/fruits/results/nope/" in result.err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("run_id", ["../escape", "a/b", ""])
def test_download_rejects_bad_run_ids(results_bucket, cli, tmp_path, run_id):
    result = cli("download-results", "--bucket", BUCKET, f"--run-id={run_id}")
    assert result.code == 2
    assert "run id" in result.err or "run-id" in result.err


def test_list_runs_marks_incomplete_ones(results_bucket, cli):
    results_bucket(RUN, FILES)
    results_bucket("broken", {"metrics.json": b"{}"})
    result = cli("download-results", "--bucket", BUCKET, "--list")
    assert result.code == 0, result.err
    lines = dict(line.split("\t") for line in result.out.strip().splitlines())
    assert lines == {RUN: "complete", "broken": "INCOMPLETE (no _SUCCESS)"}


def test_download_from_an_explicit_source(results_bucket, s3, cli, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="elsewhere/r1/_SUCCESS", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/r1/metrics.json", Body=b"{}")
    dest = tmp_path / "r1"
    result = cli(
        "download-results",
        "--source",
        f"s3://{BUCKET}/elsewhere",
        "--run-id",
        "r1",
        "--dest",
        str(dest),
    )
    assert result.code == 0, result.err
    assert _tree(dest) == {"_SUCCESS": b"", "metrics.json": b"{}"}
