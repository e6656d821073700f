"""Datasets already in S3: validated from a listing (moto), never downloaded, read in place."""

from __future__ import annotations

import boto3
import pytest

from include.datasets.s3 import (
    AVERAGE_IMAGE_BYTES,
    S3DatasetError,
    dataset_uri_setting,
    normalise_uri,
    pack_on_cluster_setting,
    packed_dataset_uri,
    plan_for_s3_dataset,
    steps_for_s3_dataset,
    summarise_listing,
    validate_s3_dataset,
)

REGION = "eu-west-1"
DATA_BUCKET = "data-team-images"


def _items(*keys_and_sizes):
    return [{"Key": k, "Size": s, "ETag": '"e"'} for k, s in keys_and_sizes]


def test_images_layout_is_counted_per_split_and_label():
    summary = summarise_listing(
        "s3://bkt/fruits",
        _items(
            ("fruits/Training/Kiwi/1.jpg", 10),
            ("fruits/Training/Kiwi/2.JPG", 10),
            ("fruits/Test/Lemon/3.png", 10),
            ("fruits/Training/Kiwi/empty.jpg", 0),
            ("fruits/README.md", 5),
            ("fruits/Training/.hidden/x.jpg", 5),
        ),
    )
    assert summary["layout"] == "images"
    assert summary["images"] == 3
    assert summary["by_split_label"] == {"Training": {"Kiwi": 2}, "Test": {"Lemon": 1}}
    assert summary["empty_files"] == ["Training/Kiwi/empty.jpg"]
    assert summary["other_files"] == ["README.md"]
    assert summary["labels"] == ["Kiwi", "Lemon"]


def test_packed_layout_estimates_images_from_bytes():
    summary = summarise_listing(
        "s3://bkt/packed/",
        _items(("packed/part-00000.parquet", 50 * AVERAGE_IMAGE_BYTES), ("packed/_SUCCESS", 0)),
    )
    assert summary["layout"] == "packed"
    assert summary["shards"] == 1
    assert summary["estimated_images"] == 50


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "holds no objects: the prefix is missing or empty"),
        (_items(("p/Training/", 0)), "holds no objects"),  # only a folder marker
        (_items(("p/Training/Kiwi/1.jpg", 0)), r"is empty: its 1 object\(s\) are all zero-byte"),
        (_items(("p/1.jpg", 10), ("p/Kiwi/2.jpg", 10)), "laid out neither as <split>/<label>"),
        (_items(("p/Training/Kiwi/notes.txt", 10)), "found e.g. Training/Kiwi/notes.txt"),
    ],
)
def test_bad_prefixes_are_refused_with_the_reason(items, message):
    with pytest.raises(S3DatasetError, match=message):
        summarise_listing("s3://bkt/p/", items)


def test_the_uri_comes_from_the_param_else_the_configuration():
    assert dataset_uri_setting({}, None) is None
    assert dataset_uri_setting({"dataset_uri": None}, "s3://cfg-bucket/x") == "s3://cfg-bucket/x/"
    assert dataset_uri_setting({"dataset_uri": "s3://p-bucket/y/"}, "s3://cfg/x") == (
        "s3://p-bucket/y/"
    )
    assert normalise_uri("s3://bucket-a") == "s3://bucket-a/"
    with pytest.raises(ValueError, match="must start with s3://"):
        dataset_uri_setting({"dataset_uri": "/local"}, None)


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


@pytest.fixture
def s3():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=DATA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield client


def test_validation_lists_without_downloading(s3):
    from include.staging.s3 import make_s3_hook

    for i in range(3):
        s3.put_object(Bucket=DATA_BUCKET, Key=f"fruits/Training/Kiwi/{i}.jpg", Body=b"jpeg")
    hook = make_s3_hook(None)
    calls: list[str] = []
    hook.get_conn().meta.events.register(
        "before-call.s3", lambda model, **kwargs: calls.append(model.name)
    )
    summary = validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits/")
    assert summary["images"] == 3
    assert calls == ["ListObjectsV2"]  # one listing page, no GetObject / HeadObject

    with pytest.raises(S3DatasetError, match="holds no objects"):
        validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/no-such-prefix/")
    with pytest.raises(S3DatasetError, match="NoSuchBucket"):
        validate_s3_dataset(hook, "s3://no-such-bucket-here/fruits/")


# --- packing an S3 dataset on the cluster -------------------------------------------------


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


def test_the_listing_digest_changes_with_an_object_and_not_otherwise(s3):
    from include.staging.s3 import make_s3_hook

    for i in range(3):
        s3.put_object(Bucket=DATA_BUCKET, Key=f"fruits/Training/Kiwi/{i}.jpg", Body=b"jpeg")
    hook = make_s3_hook(None)
    first = validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits/")["listing_digest"]
    assert validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits")["listing_digest"] == first
    s3.put_object(Bucket=DATA_BUCKET, Key="fruits/Training/Kiwi/1.jpg", Body=b"other")
    assert validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits/")["listing_digest"] != first
