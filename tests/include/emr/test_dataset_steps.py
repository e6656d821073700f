"""The cluster plan of a run on an S3 dataset: read in place, or packed on the cluster first."""

from __future__ import annotations

import pytest

from include.emr.dataset_steps import packed_dataset_uri, plan_for_s3_dataset, steps_for_s3_dataset
from include.params.cluster import pack_on_cluster_setting


def test_the_plan_reads_the_uri_in_place_and_the_original_is_untouched():
    plan = {
        "dataset_prefix": "fruits/datasets/x/packed",
        "steps": [{"Name": "s", "HadoopJarStep": {"Args": ["spark-submit", "--input", "old"]}}],
    }
    new = plan_for_s3_dataset(plan, "s3://data-team-images/fruits")
    assert new["steps"][0]["HadoopJarStep"]["Args"] == [
        "spark-submit",
        "--input",
        "s3://data-team-images/fruits/",
    ]
    assert new["dataset_uri"] == "s3://data-team-images/fruits/"
    assert new["dataset_prefix"] is None
    assert plan["steps"][0]["HadoopJarStep"]["Args"][-1] == "old"


def _real_plan(tmp_path, **params):
    from include.config import PipelineConfig
    from include.emr.plan import build_run_plan
    from include.params.cluster import emr_settings_from_params

    config = PipelineConfig(bucket="project-bucket", prefix="fruits", results_dir=tmp_path)
    plan = build_run_plan(emr_settings_from_params(params), config, dag_id="d", run_id="r")
    return plan


def _images_summary(digest="a" * 64):
    return {"layout": "images", "listing_digest": digest}


def _input(step) -> str:
    args = step["HadoopJarStep"]["Args"]
    return args[args.index("--input") + 1]


def test_packing_on_the_cluster_puts_a_pack_step_first_that_the_feature_step_reads(tmp_path):
    uri = "s3://data-team-images/fruits/"
    plan = plan_for_s3_dataset(_real_plan(tmp_path), uri, pack_on_cluster=True)
    steps, why = steps_for_s3_dataset(plan, _images_summary(), packed_ready=False)
    pack, feature = steps
    dest = packed_dataset_uri(plan, "a" * 64)
    assert dest == f"s3://project-bucket/fruits/dataset/s3-packed/{'a' * 32}/"
    args = pack["HadoopJarStep"]["Args"]
    entry = next(a for a in args if a.endswith("/entrypoint.py"))
    assert args[args.index(entry) + 1] == "pack"  # the entry script's packing mode
    assert args[args.index("--input") + 1] == uri
    assert args[args.index("--output") + 1] == dest.rstrip("/")
    # A failed pack cancels the feature step instead of running it on missing shards.
    assert pack["ActionOnFailure"] == "CANCEL_AND_WAIT"
    assert _input(feature) == dest
    assert "packs" in why
    assert _input(plan["steps"][0]) == uri  # the plan itself is not changed


def test_a_listing_packed_before_is_read_without_packing_again(tmp_path):
    plan = plan_for_s3_dataset(_real_plan(tmp_path), "s3://d-images/x/", pack_on_cluster=True)
    (feature,) = steps_for_s3_dataset(plan, _images_summary(), packed_ready=True)[0]
    assert _input(feature) == packed_dataset_uri(plan, "a" * 64)
    # Another listing (an image added, changed or gone) gets another folder.
    assert packed_dataset_uri(plan, "b" * 64) != packed_dataset_uri(plan, "a" * 64)


@pytest.mark.parametrize(
    ("pack", "summary"),
    [(False, _images_summary()), (True, {"layout": "packed", "listing_digest": "c" * 64})],
    ids=["not asked", "already packed"],
)
def test_without_packing_the_job_reads_the_dataset_in_place(pack, summary, tmp_path):
    uri = "s3://data-team-images/fruits/"
    plan = plan_for_s3_dataset(_real_plan(tmp_path), uri, pack_on_cluster=pack)
    (feature,) = steps_for_s3_dataset(plan, summary, packed_ready=False)[0]
    assert _input(feature) == uri


def test_the_pack_setting_must_be_a_boolean():
    assert pack_on_cluster_setting({}) is False
    assert pack_on_cluster_setting({"pack_s3_dataset": True}) is True
    with pytest.raises(ValueError, match="pack_s3_dataset must be true or false"):
        pack_on_cluster_setting({"pack_s3_dataset": "yes"})
    with pytest.raises(ValueError, match="not a listing digest"):
        packed_dataset_uri({"bucket": "b", "s3_packed_prefix": "p"}, "")
