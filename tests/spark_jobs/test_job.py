"""The whole job in-process on local[2]: outputs, bad inputs, PCA, packed input, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spark_jobs import FEATURE_DIM, cli
from spark_jobs import io as job_io
from tests.spark_jobs.conftest import EXPECTED_BAD, EXTRA_VALID, TEST_IMAGE_SIZE

pytestmark = pytest.mark.slow  # each run featurises in Spark's Python workers

METRICS_KEYS = {
    "run_id", "mode", "input", "output", "started_at", "finished_at", "weights", "counts",
    "bad_files", "pca", "timings_s", "throughput", "spark", "versions", "image_size",
    "batch_size", "feature_dim", "runtime", "model", "separability",
}  # fmt: skip


_MODEL_ARGS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _staged_model(converted_models):
    """The default runtime's model, converted once (as the DAGs stage it) for every run."""
    _MODEL_ARGS[:] = ["--model", str(converted_models("litert", "none"))]


def job_args(input_dir: Path, output: Path, run_id: str, *extra: str) -> list[str]:
    """The job's flags with the default runtime (litert) and its staged model."""
    return [
        "--input", str(input_dir), "--output", str(output), "--run-id", run_id,
        "--weights", "none", "--image-size", str(TEST_IMAGE_SIZE), "--batch-size", "8",
        *(_MODEL_ARGS if "--runtime" not in extra else []), *extra,
    ]  # fmt: skip


def run_job(argv: list[str]) -> dict:
    return cli.run(cli.parse_args(argv))


@pytest.fixture(scope="module")
def images_run(spark, bad_dataset, tmp_path_factory):
    """One run on the image folder, over a stale earlier run with the same id."""
    out = tmp_path_factory.mktemp("results")
    stale = out / "r1"
    (stale / "features").mkdir(parents=True)
    (stale / "features" / "part-old.parquet").write_text("stale")
    (stale / "_SUCCESS").write_text("")
    metrics = run_job(job_args(bad_dataset, out, "r1", "--pca-variance", "0.9"))
    return out / "r1", metrics


def read_parquet(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values("path").reset_index(drop=True)


def test_run_publishes_every_output_and_replaces_the_stale_run(images_run):
    run_dir, metrics = images_run
    assert (run_dir / "_SUCCESS").exists()
    assert not (run_dir / "features" / "part-old.parquet").exists()
    assert not (run_dir / cli.STAGED_DIR).exists()
    assert [p.name for p in run_dir.parent.iterdir()] == ["r1"]  # the attempt folder is gone
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert set(on_disk) >= METRICS_KEYS
    assert on_disk["weights"]["meaningful"] is False
    assert on_disk["feature_dim"] == FEATURE_DIM
    assert on_disk["image_size"] == TEST_IMAGE_SIZE
    assert on_disk["input_format"] == "images"
    assert set(on_disk["timings_s"]) == {
        "read", "featurize", "pca", "write", "separability", "total",
    }  # fmt: skip
    assert on_disk["throughput"]["cores"] == 2
    assert on_disk["spark"]["task_slots"] == 2  # local[2]: defaultParallelism


def test_counts_labels_and_splits(images_run, bad_dataset):
    _, metrics = images_run
    counts = metrics["counts"]
    assert counts["total_files"] == 24 + len(EXTRA_VALID) + len(EXPECTED_BAD)
    assert counts["valid_images"] == 24 + len(EXTRA_VALID)
    assert counts["bad_files"] == len(EXPECTED_BAD)
    assert counts["by_split"] == {"Test": 8, "Training": 16 + len(EXTRA_VALID)}
    assert counts["by_split_label"]["Training"]["Banana"] == 3  # 2 generated + UPPER CASE.JPG
    assert counts["by_split_label"]["Test"]["Banana"] == 1  # empty.jpg is not counted
    assert counts["by_label"]["Kiwi"] == 3  # truncated.jpg is not counted
    assert sum(counts["by_label"].values()) == counts["valid_images"]


def test_separability_is_measured_on_the_training_and_test_splits(images_run):
    _, metrics = images_run
    got, counts = metrics["separability"], metrics["counts"]
    assert "absent" not in got, got
    assert (got["train_rows"], got["test_rows"]) == (
        counts["by_split"]["Training"],
        counts["by_split"]["Test"],
    )
    assert got["labels"] == sorted(counts["by_split_label"]["Training"])
    assert got["k"] == metrics["pca"]["k"]
    assert got["ks"][-1] == got["k"]
    assert got["feature_dim"] == FEATURE_DIM
    for accuracy in [*got["accuracy_by_k"], got["accuracy_full"], got["chance"]]:
        assert 0.0 <= accuracy <= 1.0
    assert 0 < got["seconds"] <= metrics["timings_s"]["separability"]


def test_each_bad_input_kind_is_counted_and_skipped(images_run):
    run_dir, metrics = images_run
    reasons = {b["path"]: b["reason"] for b in metrics["bad_files"]}
    assert set(reasons) == set(EXPECTED_BAD)
    for path, reason in EXPECTED_BAD.items():
        assert reasons[path].startswith(reason)
    features = read_parquet(run_dir / "features")
    assert not set(EXPECTED_BAD) & set(features["path"])
    assert set(features["path"]) >= EXTRA_VALID


def test_features_are_1280_wide_labelled_and_never_zero(images_run):
    run_dir, metrics = images_run
    features = read_parquet(run_dir / "features")
    assert list(features.columns) == ["path", "split", "label", "features"]
    matrix = np.stack(features["features"].to_numpy())
    assert matrix.shape == (metrics["counts"]["valid_images"], FEATURE_DIM)
    assert matrix.dtype == np.float32
    assert (np.abs(matrix).sum(axis=1) > 0).all()
    row = features.set_index("path").loc["Training/Apple Red 1/pomme rouge é.jpg"]
    assert (row["split"], row["label"]) == ("Training", "Apple Red 1")


def test_features_match_plain_keras_on_the_same_images(images_run, bad_dataset, spark):
    from spark_jobs import features as feat
    from spark_jobs.runtimes import make_predictor

    run_dir, metrics = images_run
    assert metrics["runtime"] == "litert"
    assert metrics["model"]["source"] == _MODEL_ARGS[1]
    features = read_parquet(run_dir / "features").set_index("path")
    weights, _ = feat.load_weights(spark, "none", TEST_IMAGE_SIZE)
    keras = make_predictor("keras", weights, TEST_IMAGE_SIZE, 1)
    rels = ["Test/Kiwi/0_100.jpg", "Training/Pear/cmyk.jpg", "Training/Orange/alpha.png"]
    expected = feat.featurize_contents(
        keras, [(bad_dataset / r).read_bytes() for r in rels], TEST_IMAGE_SIZE, 8
    )
    for rel, vector in zip(rels, expected["features"], strict=True):
        got = np.asarray(features.loc[rel, "features"])
        assert np.abs(got - vector).max() / np.abs(vector).max() < 1e-4


def test_keras_runtime_gives_the_same_features_and_pca_curve(images_run, bad_dataset, tmp_path):
    run_dir, metrics = images_run
    keras = run_job(
        job_args(bad_dataset, tmp_path, "keras", "--runtime", "keras", "--pca-variance", "0.9")
    )
    assert (keras["runtime"], keras["model"]) == ("keras", None)
    assert "tensorflow-cpu" in keras["versions"]
    assert keras["counts"] == metrics["counts"]
    assert keras["bad_files"] == metrics["bad_files"]
    np.testing.assert_allclose(
        keras["pca"]["explained_variance"], metrics["pca"]["explained_variance"], atol=1e-6
    )
    a = np.stack(read_parquet(run_dir / "features")["features"])
    b = np.stack(read_parquet(tmp_path / "keras" / "features")["features"])
    assert np.abs(a - b).max() / np.abs(b).max() < 1e-4


def test_pca_k_comes_from_the_variance_target_and_matches_numpy(images_run):
    run_dir, metrics = images_run
    x = np.stack(read_parquet(run_dir / "features")["features"].to_numpy()).astype(np.float64)
    centred = x - x.mean(axis=0)
    eigenvalues = np.linalg.eigvalsh(np.cov(centred, rowvar=False))[::-1]
    curve = eigenvalues / eigenvalues.sum()
    got = metrics["pca"]
    n_fit = min(FEATURE_DIM, len(x))
    assert len(got["explained_variance"]) == n_fit
    np.testing.assert_allclose(got["explained_variance"], curve[:n_fit], atol=1e-6)
    expected_k = int(np.argmax(np.cumsum(curve) >= 0.9 - 1e-9)) + 1
    assert got["k"] == expected_k
    assert got["target_variance"] == 0.9
    assert got["solver"] == "gram"
    assert got["variance_at_k"] >= 0.9
    pca_out = read_parquet(run_dir / "pca")
    assert list(pca_out.columns) == ["path", "split", "label", "pca"]
    assert {len(v) for v in pca_out["pca"]} == {expected_k}
    assert list(pca_out["path"]) == list(read_parquet(run_dir / "features")["path"])


def test_packed_input_gives_the_same_features(images_run, packed_bad_dataset, tmp_path):
    run_dir, metrics = images_run
    # Also MLlib's own PCA fit: the same features must give the gram solver's curve.
    packed = run_job(
        job_args(packed_bad_dataset, tmp_path, "packed", "--pca-k", "3", "--pca-solver", "mllib")
    )
    assert packed["input_format"] == "packed"
    assert packed["counts"] == metrics["counts"]
    assert packed["bad_files"] == metrics["bad_files"]
    assert (packed["pca"]["k"], packed["pca"]["solver"]) == (3, "mllib")
    np.testing.assert_allclose(
        packed["pca"]["explained_variance"], metrics["pca"]["explained_variance"], atol=1e-6
    )
    a = read_parquet(run_dir / "features")
    b = read_parquet(tmp_path / "packed" / "features")
    assert list(a["path"]) == list(b["path"])
    assert list(a["label"]) == list(b["label"])
    np.testing.assert_allclose(
        np.stack(a["features"]), np.stack(b["features"]), rtol=1e-5, atol=1e-6
    )
    assert {len(v) for v in read_parquet(tmp_path / "packed" / "pca")["pca"]} == {3}


def test_mini_sample_is_the_seeded_sample_of_the_dataset(spark, sample_dataset, tmp_path):
    from spark_jobs import transforms

    args = (
        "--mode",
        "mini",
        "--per-class",
        "2",
        "--max-images",
        "12",
        "--seed",
        "5",
        "--pca-k",
        "2",
    )
    metrics = run_job(job_args(sample_dataset, tmp_path, "a", *args))
    assert metrics["sample"] == {"seed": 5, "max_images": 12, "per_class": 2}
    assert metrics["counts"]["valid_images"] == 12
    assert max(metrics["counts"]["by_label"].values()) <= 2
    # Exactly the rows the pure transform picks from the dataset's relative paths.
    rels = [p.relative_to(sample_dataset).as_posix() for p in sample_dataset.rglob("*.jpg")]
    listing = transforms.with_labels(spark.createDataFrame([(r,) for r in rels], "path string"))
    expected = transforms.deterministic_sample(listing, seed=5, per_class=2, max_images=12)
    got = list(read_parquet(tmp_path / "a" / "features")["path"])
    assert got == sorted(r.path for r in expected.collect())
    # The metrics say what the sample was drawn from: 12 of the whole dataset.
    assert metrics["counts"]["dataset_images"] == len(rels) > 12


def test_a_failed_rerun_leaves_the_previous_good_run_untouched(
    spark, bad_dataset, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("injected failure while publishing")

    # After features/ and pca/ are written (in the attempt folder), before publishing.
    monkeypatch.setattr(job_io, "publish_run", broken)
    previous = tmp_path / "r1"
    (previous / "pca").mkdir(parents=True)
    (previous / "pca" / "part-0.parquet").write_text("the previous good run")
    (previous / "metrics.json").write_text("{}")
    (previous / "_SUCCESS").write_text("")
    before = {p: p.read_bytes() for p in previous.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="injected"):
        run_job(
            job_args(
                bad_dataset, tmp_path, "r1", "--mode", "mini", "--max-images", "6", "--pca-k", "2"
            )
        )
    assert {p: p.read_bytes() for p in previous.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]  # no attempt folder left


def test_zero_valid_images_fails_clearly_and_publishes_nothing(spark, tmp_path, capsys):
    data = tmp_path / "data"
    for rel, payload in {
        "Training/Kiwi/a.jpg": b"",
        "Training/Kiwi/b.jpg": b"not a jpeg",
        "Test/Kiwi/c.png": b"\x89PNG\r\n\x1a\n truncated",
    }.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(payload)
    code = cli.main(job_args(data, tmp_path / "out", "r0"))
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "none of the 3 image files" in err
    assert "nothing published" in err
    assert not (tmp_path / "out" / "r0").exists()


def test_no_image_files_at_all_fails_clearly(spark, tmp_path, capsys):
    (tmp_path / "data" / "Training" / "Kiwi").mkdir(parents=True)
    (tmp_path / "data" / "Training" / "Kiwi" / "notes.txt").write_text("x")
    assert cli.main(job_args(tmp_path / "data", tmp_path / "out", "r0")) == cli.EXIT_BAD_INPUT
    assert "no .jpg/.jpeg/.png files" in capsys.readouterr().err
    assert not (tmp_path / "out" / "r0").exists()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("other-size", "another runtime, other weights or another image size"),
        ("other-weights", "another runtime, other weights or another image size"),
        ("missing", "does not exist"),
        ("corrupt", "not a converted model"),
    ],
)
def test_a_model_that_does_not_fit_the_run_exits_2_and_keeps_the_last_run(
    spark, bad_dataset, tmp_path, capsys, converted_models, other_weights_file, model, message
):
    paths = {
        "other-size": lambda: converted_models("litert", "none", image_size=48),
        "other-weights": lambda: converted_models(
            "litert", str(other_weights_file), weights_file=other_weights_file
        ),
        "missing": lambda: tmp_path / "absent.zip",
        "corrupt": lambda: _write(tmp_path / "corrupt.zip", b"PK\x03\x04 not really"),
    }
    earlier = tmp_path / "out" / "r0"
    earlier.mkdir(parents=True)
    (earlier / "_SUCCESS").write_text("")  # an earlier good run of the same id
    argv = job_args(bad_dataset, tmp_path / "out", "r0", "--runtime", "litert")
    code = cli.main([*argv, "--model", str(paths[model]())])
    assert code == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert (earlier / "_SUCCESS").exists()  # refused before anything was touched
    assert sorted(p.name for p in earlier.iterdir()) == ["_SUCCESS"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# A Python worker of this job that imports TensorFlow or Keras fails its task.
_BLOCK_TENSORFLOW = """
import sys

class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} imported in a process of a fast-runtime job")
        return None

sys.meta_path.insert(0, _NoTensorFlow())
"""


@pytest.mark.parametrize("runtime", ["litert", "onnx", "keras"])
def test_fast_runtimes_never_import_tensorflow_in_the_job(
    runtime, bad_dataset, tmp_path, converted_models
):
    """Every process of the job (driver and Python workers) runs with an import hook that
    refuses TensorFlow; keras, the control, must fail under the same hook."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_BLOCK_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(REPO_ROOT)])}
    argv = [
        sys.executable, "-m", "spark_jobs.cli", "--master", "local[2]",
        "--input", str(bad_dataset), "--output", str(tmp_path / "out"), "--run-id", runtime,
        "--weights", "none", "--image-size", str(TEST_IMAGE_SIZE), "--pca-k", "2",
        "--runtime", runtime,
    ]  # fmt: skip
    if runtime != "keras":
        argv += ["--model", str(converted_models(runtime, "none"))]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if runtime == "keras":
        assert done.returncode != 0
        assert "imported in a process of a fast-runtime job" in output
        assert not (tmp_path / "out" / runtime / "_SUCCESS").exists()
    else:
        assert done.returncode == 0, output[-3000:]
        metrics = json.loads((tmp_path / "out" / runtime / "metrics.json").read_text())
        assert metrics["counts"]["valid_images"] > 0
        assert metrics["runtime"] == runtime


def test_losing_an_executor_after_featurisation_never_featurises_again(sample_dataset, tmp_path):
    import os
    import subprocess
    import sys

    markers = tmp_path / "markers"
    markers.mkdir()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, "-m", "tests.spark_jobs.cluster_job",
         str(sample_dataset), str(tmp_path / "out"), str(markers)],
        capture_output=True, text=True, timeout=900, env=env, cwd=root, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["executors_before"]) == 2
    assert result["executors_before"][0] not in result["executors_after"]
    assert result["valid_images"] == result["total_files"] == 48
    # One UDF input row per image: the PCA and the projection read features/ back.
    assert result["markers"] == 48
    assert (tmp_path / "out" / "lost" / "_SUCCESS").exists()
