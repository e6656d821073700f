"""The incremental feature cache: reuse by content + model, equal to a full recompute."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spark_jobs import cli, feature_cache, features
from tests.spark_jobs.conftest import TEST_IMAGE_SIZE

# Added / removed between the first and the second run.
ADDED = ("Training/Kiwi/new_1.jpg", "Training/Lemon/new_2.jpg", "Test/Pear/new_3.jpg")
REMOVED = "Training/Banana/0_100.jpg"
DUPLICATE = "Test/Plum/same_bytes_as_a_kiwi.jpg"
BAD = "Training/Kiwi/truncated.jpg"


def _identity(**changes):
    base = {
        "runtime": "litert",
        "model_digest": "d" * 32,
        "image_size": 32,
        "versions": {"ai-edge-litert": "2.3.0", "pillow": "13.0.0"},
    }
    return feature_cache.model_identity(**{**base, **changes})


@pytest.mark.parametrize(
    "change",
    [
        {"runtime": "onnx"},
        {"model_digest": "e" * 32},
        {"image_size": 48},
        {"versions": {"ai-edge-litert": "2.4.0", "pillow": "13.0.0"}},
        {"versions": {"ai-edge-litert": "2.3.0", "pillow": "12.0.0"}},
    ],
)
def test_anything_that_decides_a_feature_changes_the_model_key(change):
    assert feature_cache.model_key(_identity(**change)) != feature_cache.model_key(_identity())
    assert feature_cache.model_key(_identity()) == feature_cache.model_key(_identity())


# --- the job, on local[2] ------------------------------------------------------------------


def _new_image(path: Path, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """``before``: generated images + a duplicate + a bad file; ``after``: 3 added, 1 removed."""
    from include.datasets.sample import generate_sample_dataset

    base = tmp_path_factory.mktemp("cache-data")
    before = base / "before" / "fruits-360"
    generate_sample_dataset(before, per_label=2, test_per_label=1)
    kiwi = (before / "Training/Kiwi/0_100.jpg").read_bytes()
    (before / DUPLICATE).write_bytes(kiwi)
    (before / BAD).write_bytes(kiwi[: len(kiwi) // 2])
    after = base / "after" / "fruits-360"
    shutil.copytree(before, after)
    (after / REMOVED).unlink()
    for seed, rel in enumerate(ADDED):
        _new_image(after / rel, seed)
    return before, after


@pytest.fixture(scope="module")
def litert_model(converted_models):
    return converted_models("litert", "none")


def _args(data: Path, out: Path, run_id: str, model: Path, *extra: str) -> list[str]:
    return [
        "--input", str(data), "--output", str(out), "--run-id", run_id, "--weights", "none",
        "--image-size", str(TEST_IMAGE_SIZE), "--batch-size", "8", "--model", str(model),
        "--pca-k", "3", *extra,
    ]  # fmt: skip


@pytest.fixture
def featurised_spy(tmp_path, monkeypatch):
    """Counts the images the featurising UDF really receives (one marker file per image)."""
    from pyspark.sql import functions as F

    folder = tmp_path / "spy"
    folder.mkdir()
    real = features.featurize_column
    marker_dir = str(folder)

    def _mark(content):
        if content is not None:
            (Path(marker_dir) / uuid.uuid4().hex).touch()
        return content

    mark = F.udf(_mark, "binary").asNondeterministic()
    monkeypatch.setattr(
        features, "featurize_column", lambda content, *a, **k: real(mark(content), *a, **k)
    )
    return lambda: len(list(folder.iterdir()))


def _read(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values("path").reset_index(drop=True)


@pytest.fixture(scope="module")
def incremental(spark, datasets, litert_model, tmp_path_factory):
    """A full run without cache on ``after``; a cached run on ``before`` then on ``after``."""
    before, after = datasets
    out = tmp_path_factory.mktemp("cache-out")
    cache = out / "feature-cache"
    cached = ("--feature-cache", str(cache))
    full = cli.run(cli.parse_args(_args(after, out, "full", litert_model)))
    first = cli.run(cli.parse_args(_args(before, out, "first", litert_model, *cached)))
    return out, cache, full, first


@pytest.mark.slow
def test_a_first_run_fills_the_cache_without_changing_the_results(incremental, datasets):
    out, cache, full, first = incremental
    counts = first["counts"]
    assert counts["reused"] == 0
    assert counts["featurized"] == counts["valid_images"] == 25  # 8 labels x 3 + duplicate
    assert counts["bad_files"] == 1  # the truncated file: not cached
    stats = first["feature_cache"]
    assert stats["hits"] == 0
    assert stats["misses"] == 26
    assert stats["written"] == 24  # the duplicate's bytes are one entry
    assert stats["rejected"] == 0
    folder = cache / f"model={stats['model_key']}"
    assert json.loads((folder / feature_cache.IDENTITY_FILE).read_text()) == stats["identity"]
    entries = pd.read_parquet(folder)
    assert len(entries) == 24
    assert set(entries["model_key"]) == {stats["model_key"]}
    assert not list(out.glob("*.tmp-*"))  # no attempt folder (nor its cache staging) left
    # Without the flag nothing is cached and the metrics say so.
    assert full["feature_cache"] is None
    assert full["counts"]["reused"] == 0


@pytest.mark.slow
def test_three_added_one_removed_featurises_exactly_three(
    spark, incremental, datasets, litert_model, featurised_spy
):
    out, cache, full, _first = incremental
    _before, after = datasets
    second = cli.run(
        cli.parse_args(_args(after, out, "second", litert_model, "--feature-cache", str(cache)))
    )
    counts = second["counts"]
    assert counts["featurized"] == 3
    assert counts["reused"] == counts["valid_images"] - 3 == 24
    assert second["feature_cache"]["written"] == 3
    assert second["feature_cache"]["misses"] == 4  # the 3 new images + the bad file again
    assert featurised_spy() == 4  # what the UDF really decoded: never a reused image

    got, want = _read(out / "second" / "features"), _read(out / "full" / "features")
    assert REMOVED not in set(got["path"])
    assert REMOVED not in set(_read(out / "second" / "pca")["path"])
    assert list(got["path"]) == list(want["path"])
    assert set(ADDED) <= set(got["path"])
    # Bit-identical features, reused rows and new rows alike.
    for a, b in zip(got["features"], want["features"], strict=True):
        assert np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    dup = got.set_index("path")["features"]
    assert np.array_equal(dup[DUPLICATE], dup["Training/Kiwi/0_100.jpg"])
    np.testing.assert_allclose(
        second["pca"]["explained_variance"], full["pca"]["explained_variance"], rtol=0, atol=1e-9
    )
    for key in ("total_files", "valid_images", "bad_files", "by_split_label"):
        assert counts[key] == full["counts"][key]


@pytest.mark.slow
@pytest.mark.parametrize("other", ["image size", "weights", "runtime"])
def test_another_model_or_image_size_never_reuses_a_cached_feature(
    spark, incremental, datasets, converted_models, other_weights_file, other, tmp_path
):
    _out, cache, _full, first = incremental
    before, _after = datasets
    model, extra = {
        "image size": (converted_models("litert", "none", 48), ["--image-size", "48"]),
        "weights": (
            converted_models("litert", str(other_weights_file), weights_file=other_weights_file),
            ["--weights", str(other_weights_file)],
        ),
        "runtime": (converted_models("onnx", "none"), ["--runtime", "onnx"]),
    }[other]
    cached_copy = tmp_path / "cache"
    shutil.copytree(cache, cached_copy)  # entries for the same images, made by litert
    original = cached_copy / f"model={first['feature_cache']['model_key']}"
    entries_before = pd.read_parquet(original)
    argv = _args(before, tmp_path, "other", model, "--feature-cache", str(cached_copy))
    metrics = cli.run(cli.parse_args(argv + extra))
    assert metrics["counts"]["reused"] == 0
    assert metrics["counts"]["featurized"] == metrics["counts"]["valid_images"] == 25
    assert metrics["feature_cache"]["model_key"] != first["feature_cache"]["model_key"]
    # A folder of its own: the first model's entries are untouched.
    folders = sorted(p.name for p in cached_copy.iterdir())
    assert len(folders) == 2
    pd.testing.assert_frame_equal(pd.read_parquet(original), entries_before)


@pytest.mark.slow
def test_foreign_or_damaged_entries_are_not_trusted(
    spark, incremental, datasets, litert_model, tmp_path
):
    import hashlib

    out, cache, _full, first = incremental
    _before, after = datasets
    damaged = tmp_path / "cache"
    shutil.copytree(cache, damaged)
    folder = damaged / f"model={first['feature_cache']['model_key']}"
    entries = pd.read_parquet(folder)
    for f in [*folder.glob("part-*"), *folder.glob(".part-*")]:
        f.unlink()
    kept = entries.iloc[8:]
    kept.to_parquet(folder / "part-kept.parquet")
    # Another model's rows copied in, rows of the wrong width, a file that is not parquet.
    entries.iloc[:5].assign(model_key="f" * 24).to_parquet(folder / "part-foreign.parquet")
    narrow = [np.zeros(3, np.float32)] * 3
    entries.iloc[5:8].assign(features=narrow).to_parquet(folder / "part-narrow.parquet")
    (folder / "part-garbage.parquet").write_bytes(b"PAR1 not really parquet")

    argv = _args(after, tmp_path, "damaged", litert_model, "--feature-cache", str(damaged))
    metrics = cli.run(cli.parse_args(argv))
    trusted = set(kept["content_sha256"])
    images = [p for p in after.rglob("*.jpg") if p.name != Path(BAD).name]
    expected_hits = sum(hashlib.sha256(p.read_bytes()).hexdigest() in trusted for p in images)
    stats = metrics["feature_cache"]
    assert stats["rejected"] == 8
    assert 0 < stats["hits"] == expected_hits == metrics["counts"]["reused"]
    assert metrics["counts"]["featurized"] == 27 - expected_hits
    got, want = _read(tmp_path / "damaged" / "features"), _read(out / "full" / "features")
    assert list(got["path"]) == list(want["path"])
    for a, b in zip(got["features"], want["features"], strict=True):
        assert np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


@pytest.mark.slow
def test_a_cache_folder_describing_another_model_refuses_the_run(
    spark, incremental, datasets, litert_model, tmp_path, capsys
):
    _out, cache, _full, first = incremental
    before, _after = datasets
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    folder = copy / f"model={first['feature_cache']['model_key']}"
    identity = json.loads((folder / feature_cache.IDENTITY_FILE).read_text())
    (folder / feature_cache.IDENTITY_FILE).write_text(json.dumps({**identity, "image_size": 64}))
    (folder / f".{feature_cache.IDENTITY_FILE}.crc").unlink(missing_ok=True)
    code = cli.main(
        [*_args(before, tmp_path, "refused", litert_model), "--feature-cache", str(copy)]
    )
    assert code == cli.EXIT_BAD_INPUT
    assert "features of another model" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
