"""The dataset's S3 upload (through :mod:`include.staging.s3`) and its key prefix."""

from __future__ import annotations

import shutil

import boto3
import pytest

from include.datasets.upload import upload_dataset
from include.staging.s3 import md5_of

REGION = "eu-west-1"
BUCKET = "fruits-staging-test"


@pytest.fixture
def s3():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield client


@pytest.fixture
def dataset(sample_dataset, tmp_path):
    """A private copy of the sample dataset (the session one is read-only)."""
    return shutil.copytree(sample_dataset, tmp_path / "fruits")


def _objects(s3, prefix="ds/"):
    return {
        o["Key"]: o for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    }


def test_images_upload_is_idempotent_and_mirrors_deletions(s3, dataset):
    files = sorted(p for p in dataset.rglob("*") if p.is_file())
    first = upload_dataset(dataset, BUCKET, "ds", aws_conn_id=None, pack=False)
    assert (first.uploaded, first.skipped, first.deleted) == (len(files), 0, 0)
    assert first.uri == f"s3://{BUCKET}/ds/"
    objects = _objects(s3)
    key = f"ds/{files[0].relative_to(dataset).as_posix()}"
    assert objects[key]["ETag"].strip('"') == md5_of(files[0])
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256"

    second = upload_dataset(dataset, BUCKET, "ds", aws_conn_id=None, pack=False)
    assert (second.uploaded, second.skipped) == (0, len(files))

    files[0].write_bytes(files[0].read_bytes() + b"changed")
    files[1].unlink()
    calls = []
    third = upload_dataset(
        dataset, BUCKET, "ds", aws_conn_id=None, pack=False, progress=lambda d, t: calls.append(d)
    )
    assert (third.uploaded, third.skipped, third.deleted) == (1, len(files) - 2, 1)
    assert set(_objects(s3)) == {
        f"ds/{p.relative_to(dataset).as_posix()}" for p in dataset.rglob("*") if p.is_file()
    }
    assert calls == list(range(1, len(files)))


def test_packed_upload_writes_few_shards_and_skips_when_unchanged(s3, dataset):
    first = upload_dataset(dataset, BUCKET, "ds", aws_conn_id=None, pack=True)
    assert first.packed
    assert first.uploaded >= 1
    keys = set(_objects(s3))
    assert keys
    assert all(k.startswith("ds/part-") and k.endswith(".parquet") for k in keys)
    assert len(keys) < sum(1 for p in dataset.rglob("*") if p.is_file())
    second = upload_dataset(dataset, BUCKET, "ds", aws_conn_id=None, pack=True)
    assert (second.uploaded, second.skipped, second.deleted) == (0, len(keys), 0)


def test_switching_layout_under_one_prefix_removes_the_old_objects(s3, dataset):
    upload_dataset(dataset, BUCKET, "ds", aws_conn_id=None, pack=False)
    packed = upload_dataset(dataset, BUCKET, "ds", aws_conn_id=None, pack=True)
    assert packed.deleted > 0
    assert all(k.endswith(".parquet") for k in _objects(s3))


def test_missing_folder_and_empty_prefix_are_refused(s3, tmp_path, dataset):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        upload_dataset(tmp_path / "nope", BUCKET, "ds", aws_conn_id=None, pack=False)
    with pytest.raises(ValueError, match="key_prefix must not be empty"):
        upload_dataset(dataset, BUCKET, "/", aws_conn_id=None, pack=False)
    assert _objects(s3, prefix="") == {}


def test_missing_bucket_fails_clearly(dataset):
    from botocore.exceptions import ClientError
    from moto import mock_aws

    with mock_aws(), pytest.raises(ClientError, match=r"NoSuchBucket"):
        upload_dataset(dataset, "no-such-bucket", "ds", aws_conn_id=None, pack=False)


def test_dataset_key_prefix_is_shared_by_dag_and_cli():
    from include.datasets.upload import dataset_key_prefix

    assert dataset_key_prefix("/fruits/", "/data/Fruits 360!", pack=True) == (
        "fruits/datasets/Fruits-360/packed"
    )
    assert dataset_key_prefix("fruits", "/data/fruits-360", pack=False).endswith("/images")
