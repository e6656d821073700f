"""Datasets already in S3: validated from a listing (moto), never downloaded, read in place."""

from __future__ import annotations

import boto3
import pytest

from include.datasets.s3 import (
    AVERAGE_IMAGE_BYTES,
    S3DatasetError,
    summarise_listing,
    validate_s3_dataset,
)
from include.params.common import dataset_uri_setting
from include.params.dataset_uri import normalise_uri

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


def test_the_listing_digest_changes_with_an_object_and_not_otherwise(s3):
    from include.staging.s3 import make_s3_hook

    for i in range(3):
        s3.put_object(Bucket=DATA_BUCKET, Key=f"fruits/Training/Kiwi/{i}.jpg", Body=b"jpeg")
    hook = make_s3_hook(None)
    first = validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits/")["listing_digest"]
    assert validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits")["listing_digest"] == first
    s3.put_object(Bucket=DATA_BUCKET, Key="fruits/Training/Kiwi/1.jpg", Body=b"other")
    assert validate_s3_dataset(hook, f"s3://{DATA_BUCKET}/fruits/")["listing_digest"] != first
