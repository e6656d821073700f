"""Fingerprints: what changes them and what does not."""

from __future__ import annotations

import dataclasses

import pytest

from include.params.job_args import JobSettings
from include.reruns.fingerprint import (
    FINGERPRINT_VERSION,
    build_success_record,
    changed_components,
    job_package_digest,
    run_fingerprint,
    unchanged_since,
    weights_identity,
)

PACKAGE = {"version": "0.1.0", "sha256": "p" * 64}


def fingerprint_of(job: JobSettings, **overrides):
    kwargs = {
        "manifest_digest": "m" * 64,
        "weights": weights_identity(job.weights, file_digest="f" * 64),
        "job_package": PACKAGE,
        "environment": {"platform": "emr", "release_label": "emr-7.12.0"},
        **overrides,
    }
    return run_fingerprint(job, **kwargs)


# --- fingerprints ----------------------------------------------------------------------------


def _other_value(field: dataclasses.Field, value):
    """A different valid value for a JobSettings field."""
    others = {
        "mode": "full",
        "max_images": 7,
        "per_class": 3,
        "seed": 43,
        "pca_variance": 0.9,
        "pca_k": 5,
        "pca_solver": "mllib",
        "weights": "none",
        "image_size": 160,
        "batch_size": 32,
        "runtime": "keras",
        # The cluster's slots: they do not change the features, but a cluster of another
        # shape is another run, and one more field is cheaper than a missed change.
        "task_slots": 8,
    }
    if field.name not in others:
        pytest.fail(f"JobSettings has a new field {field.name!r}: add a value to this test")
    return others[field.name]


@pytest.mark.parametrize("field", dataclasses.fields(JobSettings), ids=lambda f: f.name)
def test_every_job_settings_field_changes_the_fingerprint(field):
    base = JobSettings(per_class=5)
    new = _other_value(field, getattr(base, field.name))
    changes = {field.name: new}
    if field.name == "pca_k":
        changes["pca_variance"] = None
    other = dataclasses.replace(base, **changes)
    assert fingerprint_of(other)["fingerprint"] != fingerprint_of(base)["fingerprint"]
    assert f"job_settings.{field.name}" in changed_components(
        {"components": fingerprint_of(base)["components"]}, fingerprint_of(other)
    )


def test_a_field_added_to_the_settings_enters_the_fingerprint_without_code_changes():
    """The lead's `runtime` field: a subclass stands in for JobSettings gaining it."""

    @dataclasses.dataclass(frozen=True)
    class WithRuntime(JobSettings):
        runtime: str = "onnx"

    onnx, keras = WithRuntime(), WithRuntime(runtime="keras")
    assert fingerprint_of(onnx)["components"]["job_settings"]["runtime"] == "onnx"
    assert fingerprint_of(onnx)["fingerprint"] != fingerprint_of(keras)["fingerprint"]


def test_every_other_component_changes_the_fingerprint():
    job = JobSettings(weights="/models/w.weights.h5")
    base = fingerprint_of(job)["fingerprint"]
    variants = {
        "manifest": {"manifest_digest": "n" * 64},
        "weights content": {"weights": weights_identity(job.weights, file_digest="g" * 64)},
        "package digest": {"job_package": {**PACKAGE, "sha256": "q" * 64}},
        "package version": {"job_package": {**PACKAGE, "version": "0.2.0"}},
        "environment": {"environment": {"platform": "emr", "release_label": "emr-7.13.0"}},
    }
    for name, override in variants.items():
        assert fingerprint_of(job, **override)["fingerprint"] != base, name
    assert fingerprint_of(job)["fingerprint"] == base  # and it is deterministic
    assert fingerprint_of(job)["components"]["fingerprint_version"] == FINGERPRINT_VERSION


def test_a_weights_file_is_identified_by_its_content_not_its_path():
    moved = fingerprint_of(JobSettings(weights="/new/place/w.h5"))
    original = fingerprint_of(JobSettings(weights="/models/w.h5"))
    assert moved["fingerprint"] == original["fingerprint"]
    assert original["components"]["job_settings"]["weights"] == {"kind": "file", "sha256": "f" * 64}


def test_weights_identity_needs_a_digest_for_files_and_s3():
    assert weights_identity("imagenet") == {"kind": "imagenet"}
    assert weights_identity("none") == {"kind": "none"}
    assert weights_identity("s3://b/w.h5", s3_checksum="etag:1")["checksum"] == "etag:1"
    with pytest.raises(ValueError, match="checksum/ETag is needed"):
        weights_identity("s3://b/w.h5")
    with pytest.raises(ValueError, match="content digest is needed"):
        weights_identity("/models/w.h5")


def test_settings_must_be_a_dataclass_instance():
    with pytest.raises(TypeError, match="dataclass instance"):
        run_fingerprint(
            {"mode": "mini"},
            manifest_digest="m",
            weights={"kind": "none"},
            job_package=PACKAGE,
        )


def test_job_package_digest_follows_the_zip_contents(tmp_path):
    package = tmp_path / "spark_jobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("print(1)\n")
    base = job_package_digest(package)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"cache: not in the zip")
    assert job_package_digest(package) == base
    (package / "cli.py").write_text("print(2)\n")
    assert job_package_digest(package) != base


def test_unchanged_since_compares_with_the_record():
    fingerprint = fingerprint_of(JobSettings())
    record = build_success_record(
        fingerprint,
        dag_id="d",
        run_id="r1",
        run_key="r1",
        results_uri="s3://b/p/results/r1",
        report_uri=None,
        finished_at="2026-12-02T00:00:00+00:00",
    )
    assert unchanged_since(record, fingerprint) is record
    assert unchanged_since(None, fingerprint) is None
    assert unchanged_since(record, fingerprint_of(JobSettings(seed=1))) is None
    assert changed_components(None, fingerprint) == ["(no earlier successful run)"]
    assert changed_components(record, fingerprint_of(JobSettings(), manifest_digest="x")) == [
        "manifest_digest"
    ]
