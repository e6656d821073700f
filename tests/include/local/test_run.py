"""``make run``'s driver: weights decision, sample dataset, Airflow env, and one real run.

No test touches the network: downloads are injected, or served from 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from include.config import REPO_ROOT
from include.local import run as local_run
from include.local.run import (
    airflow_env,
    ensure_sample_dataset,
)


def test_sample_dataset_is_made_once_and_remade_when_damaged(tmp_path, capsys):
    dest = tmp_path / "sample"

    ensure_sample_dataset(dest, per_label=3)
    first = sorted(p.relative_to(dest) for p in dest.rglob("*.jpg"))
    assert len(first) == 8 * (3 + 1)  # 8 classes, 3 training + 1 test image each
    assert "wrote 32 images" in capsys.readouterr().out

    ensure_sample_dataset(dest, per_label=3)
    assert "already there" in capsys.readouterr().out

    victim = dest / first[0]
    victim.unlink()
    ensure_sample_dataset(dest, per_label=3)
    assert "wrote 32 images" in capsys.readouterr().out
    assert victim.is_file()


def test_sample_dataset_with_other_settings_is_regenerated(tmp_path, capsys):
    dest = tmp_path / "sample"
    ensure_sample_dataset(dest, per_label=3)
    capsys.readouterr()

    ensure_sample_dataset(dest, per_label=6)

    assert "wrote 64 images" in capsys.readouterr().out
    assert json.loads((dest / local_run.SAMPLE_MARKER).read_text())["per_label"] == 6


def test_airflow_env_defaults_do_not_override_the_user():
    env = airflow_env({"AIRFLOW_HOME": "/custom", "PYTHONPATH": "/extra"})

    assert env["AIRFLOW_HOME"] == "/custom"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    assert json.loads(env["AIRFLOW_CONN_SPARK_LOCAL"]) == {
        "conn_type": "spark",
        "host": "local[*]",
    }
    assert env["PYTHONPATH"].split(os.pathsep) == [str(local_run.REPO_ROOT), "/extra"]


def test_bad_data_folder_is_a_clear_error(tmp_path, capsys, restore_environ):
    code = local_run.main(["--data", str(tmp_path / "missing"), "--offline"])

    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_explicit_imagenet_offline_is_a_clear_error(
    tmp_path, capsys, restore_environ, sample_dataset, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))

    code = local_run.main(["--data", str(sample_dataset), "--weights", "imagenet", "--offline"])

    assert code == 2
    assert "ImageNet weights requested" in capsys.readouterr().err


def test_failed_run_exits_non_zero_and_names_the_failed_tasks(
    sample_dataset, monkeypatch, capsys, restore_environ
):
    monkeypatch.setattr(local_run, "migrate_db", lambda env: None)
    monkeypatch.setattr(
        local_run,
        "run_dag",
        lambda conf: (
            "manual__x",
            "failed",
            {"validate_dataset": "success", "run_feature_job": "failed"},
        ),
    )

    code = local_run.main(["--data", str(sample_dataset), "--offline"])

    err = capsys.readouterr().err
    assert code == 1
    assert "run manual__x ended failed (run_feature_job=failed)" in err


def test_conf_carries_the_choices_to_the_dag(
    sample_dataset, monkeypatch, restore_environ, tmp_path
):
    seen = {}
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached ImageNet file: "none"
    monkeypatch.setattr(local_run, "migrate_db", lambda env: None)

    def fake_run(conf):
        seen.update(conf)
        return "manual__x", "failed", {}

    monkeypatch.setattr(local_run, "run_dag", fake_run)

    local_run.main(["--data", str(sample_dataset), "--offline", "--mode", "full", "--pca-k", "5"])

    assert seen == {
        "dataset_dir": str(sample_dataset.resolve()),
        "weights": "none",
        "mode": "full",
        "pca_k": 5,
        "pca_variance": None,
    }


def _selection(argv: list[str], images: int) -> dict:
    parser = argparse.ArgumentParser()
    local_run.add_selection_arguments(parser)
    return local_run.selection_conf(parser.parse_args(argv), images)


def test_a_users_dataset_is_never_sampled_silently(capsys):
    """No --mode: every image, and the console says so before the run."""
    assert _selection([], 10_664) == {"mode": "full"}
    assert "mode: full: every image (10,664); MODE=mini for a seeded sample" in (
        capsys.readouterr().out
    )


def test_mini_mode_names_the_sample_and_the_total(capsys):
    assert _selection(["--mode", "mini"], 10_664) == {"mode": "mini", "max_images": 200}
    assert (
        "mode: mini: a seeded sample of 200 of the 10,664 images (cap 200); "
        "MODE=full for every image" in capsys.readouterr().out
    )
    # A cap alone asks for the sample; a cap above the dataset keeps every image.
    assert _selection(["--max-images", "50"], 30) == {"mode": "mini", "max_images": 50}
    assert "mode: mini: every image (30, under the sample's cap of 50)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "full", "--max-images", "5"], "only mini mode does"),
        (["--max-images", "0"], "at least 1"),
    ],
)
def test_contradictory_selection_is_refused_before_the_run(
    sample_dataset, monkeypatch, capsys, restore_environ, argv, message
):
    monkeypatch.setattr(local_run, "migrate_db", _no_run)
    monkeypatch.setattr(local_run, "run_dag", _no_run)
    code = local_run.main(["--data", str(sample_dataset), "--offline", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def _no_run(*args, **kwargs):
    raise AssertionError("the run must not start")


def _metrics(mode: str, read: int, total: int) -> dict:
    return {
        "mode": mode,
        "sample": {"seed": 42, "max_images": 200, "per_class": None} if mode == "mini" else None,
        "counts": {"total_files": read, "dataset_images": total, "valid_images": read},
    }


@pytest.mark.parametrize(
    ("metrics", "line"),
    [
        (
            _metrics("mini", 200, 10_664),
            "mode         mini: 200 of 10,664 images, a seeded sample (seed 42, cap 200); "
            "MODE=full for every image",
        ),
        (_metrics("full", 10_664, 10_664), "mode         full: every image (10,664)"),
        (
            _metrics("mini", 30, 30),
            "mode         mini: every image (30): the sample's limits (cap 200) are not reached",
        ),
    ],
)
def test_closing_summary_says_what_was_read(tmp_path, metrics, line):
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    decision = local_run.WeightsDecision("none", False, "test")
    assert line in local_run.summarise(tmp_path, decision)


def test_make_passes_the_selection_options_through():
    """`make run` / `make run-emr` hand MODE, MAX_IMAGES, ... to the entry points."""
    options = ["DATA=/d", "MODE=mini", "MAX_IMAGES=7", "OFFLINE=1", "WEIGHTS=none"]
    for target, module in (("run", "include.local.run"), ("run-emr", "emr_emulator.run_pipeline")):
        dry = subprocess.run(
            ["make", "-n", "--no-print-directory", target, *options, "PCA_K=3"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
        args = shlex.split(dry.split(f"-m {module}", 1)[1])
        assert args[:8] == [
            "--data", "/d", "--weights", "none", "--mode", "mini", "--max-images", "7",
        ]  # fmt: skip
        assert "--offline" in args
        assert ("--pca-k" in args) == (target == "run")


@pytest.fixture
def restore_environ():
    """main() exports the Airflow settings into os.environ: undo that after the test."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.slow
def test_make_run_end_to_end_on_local_spark(
    airflow_db, sample_dataset, tmp_path, monkeypatch, capsys, restore_environ
):
    """The README's run command: the local DAG through Airflow, real Spark, then the report;
    the same run again (skipped); then more images, featurised alone (the feature cache)."""
    data = tmp_path / "fruits-360"
    shutil.copytree(sample_dataset, data)
    root = tmp_path / "results"
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(root))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))  # no cached ImageNet file
    results = root / local_run.DAG_ID  # a run's folder names its DAG, beside the DAG's record

    code = local_run.main(["--data", str(data), "--offline", "--pca-k", "2", "--max-images", "24"])

    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    run_dirs = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    assert (run_dir / "_SUCCESS").is_file()
    assert list((run_dir / "features").glob("*.parquet"))
    assert list((run_dir / "pca").glob("*.parquet"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["counts"]["valid_images"] == 24  # the mini-mode cap reached the job
    images = sum(1 for p in data.rglob("*.jpg"))
    assert metrics["counts"]["dataset_images"] == images > 24
    # A sample says so before the run and in the closing summary, naming the total.
    assert f"mode: mini: a seeded sample of 24 of the {images} images" in out.out
    assert f"mode         mini: 24 of {images} images, a seeded sample" in out.out
    assert metrics["pca"]["k"] == 2
    assert metrics["weights"]["meaningful"] is False
    report = (run_dir / "report" / "report.html").read_text()
    assert "NOT meaningful" in report
    # The console says where everything is and which weights were used.
    assert f"report       {run_dir / 'report' / 'report.html'}" in out.out
    assert f"features     {run_dir / 'features'}" in out.out
    assert "RANDOM weights" in out.out + out.err

    # Scheduled-run guards: the run left its manifest, fingerprint and the last-success
    # record, and updated both Assets (Airflow's own asset_event table).
    record = json.loads((results / "_last_success.json").read_text())
    assert record["results_uri"] == str(run_dir)
    assert record["report_uri"] == str(run_dir / "report" / "report.html")
    fingerprint = json.loads((run_dir / "fingerprint.json").read_text())
    assert fingerprint["fingerprint"] == record["fingerprint"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["files"] == sum(1 for p in sample_dataset.rglob("*") if p.is_file())
    events = _local_asset_events()
    assert [e["fingerprint"] for e in events["fruits_features_pca"]][-1] == record["fingerprint"]
    assert events["fruits_features_pca"][-1]["k"] == 2
    assert events["fruits_features_features"][-1]["local_dir"] == str(run_dir / "features")

    # The same run again: skipped, nothing recomputed, no new folder, no new Asset event.
    code = local_run.main(["--data", str(data), "--offline", "--pca-k", "2", "--max-images", "24"])

    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert f"unchanged since run {record['run_id']}" in out.out
    assert f"report       {run_dir / 'report' / 'report.html'}" in out.out
    assert [p for p in results.iterdir() if p.is_dir() and not p.name.startswith("_")] == [run_dir]
    assert json.loads((results / "_last_success.json").read_text()) == record
    assert _local_asset_events() == events

    # Two more images and `make run DATA=...` with no mode: every image (a user's folder is
    # never sampled silently); only the images no run featurised yet are featurised, the
    # first run's 24 come from the feature cache.
    kiwis = sorted((data / "Training" / "Kiwi").glob("*.jpg"))[:2]
    for i, source in enumerate(kiwis):
        _recolour(source, source.with_name(f"extra_{i}.jpg"))
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "run", f"DATA={data}", "OFFLINE=1", "PCA_K=2",
         f"AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    code = out.returncode
    assert code == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith("_")]
    (third,) = set(runs) - {run_dir}
    metrics = json.loads((third / "metrics.json").read_text())
    total = sum(1 for p in data.rglob("*.jpg"))
    assert metrics["counts"]["valid_images"] == total
    assert metrics["counts"]["reused"] == 24
    assert metrics["counts"]["featurized"] == total - 24
    assert metrics["feature_cache"]["uri"] == f"file://{root / '_feature_cache'}"
    assert f"featurised   {total - 24} now, 24 reused" in out.stdout
    assert f"mode: full: every image ({total})" in out.stdout
    assert f"mode         full: every image ({total})" in out.stdout


def _recolour(source: Path, dest: Path) -> None:
    """A new image (other bytes) from an existing one."""
    from PIL import Image, ImageOps

    ImageOps.invert(Image.open(source).convert("RGB")).save(dest, quality=90)


def _local_asset_events() -> dict[str, list[dict]]:
    """Extras of the local DAG's Asset events, by Asset name (Airflow's own records)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == local_run.DAG_ID)
            .order_by(AssetEvent.id)
        ).all()
    events: dict[str, list[dict]] = {"fruits_features_pca": [], "fruits_features_features": []}
    for name, extra in rows:
        events[name].append(extra)
    return events


def test_summary_names_the_features_folder_only_when_it_was_downloaded(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics("full", 3, 3)))
    decision = local_run.WeightsDecision("none", False, "test")

    without = local_run.summarise(tmp_path, decision)
    (tmp_path / "features").mkdir()
    with_features = local_run.summarise(tmp_path, decision)

    assert str(tmp_path / "features") not in without
    assert "features     not downloaded: kept beside the results in S3" in without
    assert "download_features" in without
    assert f"features     {tmp_path / 'features'}  (parquet" in with_features


@pytest.mark.parametrize(
    ("section", "line"),
    [
        (
            {
                "k": 3,
                "accuracy_at_k": 0.75,
                "accuracy_full": 0.90625,
                "feature_dim": 1280,
                "chance": 0.125,
            },
            "classes      Test accuracy 0.750 at k = 3, 0.906 on all 1280 features (chance 0.125)",
        ),
        ({"absent": "no Test split"}, "classes      not measured: no Test split"),
        (None, "classes      not measured (metrics.json without separability)"),
    ],
)
def test_closing_summary_says_whether_k_keeps_the_classes_apart(tmp_path, section, line):
    metrics = _metrics("full", 3, 3)
    if section is not None:
        metrics["separability"] = section
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    summary = local_run.summarise(tmp_path, local_run.WeightsDecision("none", False, "test"))
    assert line in summary
    assert "nor is" in summary  # random weights: the accuracy is not meaningful either
