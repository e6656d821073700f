from __future__ import annotations

import pytest

from include.params.job_args import JobSettings, build_job_arguments, safe_run_id


def _flags(args: list[str]) -> dict[str, str]:
    assert len(args) % 2 == 0, args
    return dict(zip(args[::2], args[1::2], strict=True))


def test_mini_mode_with_variance_target():
    args = build_job_arguments(
        JobSettings(mode="mini", max_images=50, per_class=5, pca_variance=0.9, weights="none"),
        input_uri="s3://b/p/data",
        output_uri="s3://b/p/results",
        run_id="manual__2026",
    )
    assert all(isinstance(a, str) for a in args)
    flags = _flags(args)
    assert flags["--input"] == "s3://b/p/data"
    assert flags["--output"] == "s3://b/p/results"
    assert flags["--run-id"] == "manual__2026"
    assert flags["--mode"] == "mini"
    assert flags["--max-images"] == "50"
    assert flags["--per-class"] == "5"
    assert flags["--pca-variance"] == "0.9"
    assert "--pca-k" not in flags
    assert flags["--weights"] == "none"
    assert flags["--pca-solver"] == "gram"


def test_full_mode_drops_sample_caps_and_uses_fixed_k():
    args = build_job_arguments(
        JobSettings(mode="full", max_images=50, pca_variance=None, pca_k=20, pca_solver="mllib"),
        input_uri="/data",
        output_uri="/out",
        run_id="r1",
    )
    flags = _flags(args)
    assert flags["--mode"] == "full"
    assert "--max-images" not in flags
    assert "--per-class" not in flags
    assert flags["--pca-k"] == "20"
    assert "--pca-variance" not in flags
    assert flags["--pca-solver"] == "mllib"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "huge"}, "mode"),
        ({"pca_variance": None, "pca_k": None}, "exactly one"),
        ({"pca_variance": 0.9, "pca_k": 3}, "exactly one"),
        ({"pca_variance": 1.5}, "pca_variance"),
        ({"pca_variance": None, "pca_k": 0}, "pca_k"),
        ({"pca_solver": "svd"}, "pca_solver"),
        ({"max_images": 0}, "max_images"),
        ({"per_class": -1}, "per_class"),
        ({"weights": "  "}, "weights"),
        ({"image_size": 16}, "image_size"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JobSettings(**kwargs)


def test_safe_run_id_is_one_path_segment():
    assert safe_run_id("manual__2026-01-02T03:04:05+00:00") == "manual__2026-01-02T03_04_05_00_00"
    assert safe_run_id("a/../b c") == "a_.._b_c"
    assert len(safe_run_id("x" * 500)) == 200
    with pytest.raises(ValueError, match="no usable characters"):
        safe_run_id("::")


def test_feature_cache_is_passed_only_when_given_and_is_no_job_setting():
    settings = JobSettings(weights="none")
    common = {"input_uri": "/d", "output_uri": "/o", "run_id": "r"}
    assert "--feature-cache" not in build_job_arguments(settings, **common)
    args = build_job_arguments(settings, **common, feature_cache_uri="s3://b/p/feature-cache/")
    assert _flags(args)["--feature-cache"] == "s3://b/p/feature-cache/"
    # It never changes the results: it must stay out of the fingerprint (every JobSettings
    # field enters it).
    assert not {f for f in JobSettings.__dataclass_fields__ if "cache" in f}
