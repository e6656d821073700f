"""upload-dataset: the DAG's own upload code, to the key prefix the EMR DAG reads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from include.config import load_config
from include.infra.cli import dag_dataset_prefix
from tests.include.infra.conftest import BUCKET, REGION


@pytest.fixture
def bucket(aws, cli, s3):
    assert cli("create-bucket", "--bucket", BUCKET).code == 0
    return BUCKET


def _keys(s3, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.mark.slow
def test_upload_packed_dataset_then_nothing_on_rerun(bucket, cli, s3, sample_dataset):
    result = cli("upload-dataset", "--bucket", bucket, "--data-dir", str(sample_dataset))
    assert result.code == 0, result.err
    prefix = f"fruits/datasets/{sample_dataset.name}/packed/"
    keys = _keys(s3, prefix)
    assert keys
    assert all(k.startswith(f"{prefix}part-") and k.endswith(".parquet") for k in keys)
    head = s3.head_object(Bucket=bucket, Key=keys[0])
    assert head["ServerSideEncryption"] == "AES256"
    assert f"job input: s3://{bucket}/{prefix}" in result.out
    rerun = cli("upload-dataset", "--bucket", bucket, "--data-dir", str(sample_dataset))
    assert rerun.code == 0, rerun.err
    assert f"0 uploaded (0 bytes), {len(keys)} unchanged" in rerun.out


def test_upload_without_packing_mirrors_every_file(bucket, cli, s3, sample_dataset):
    result = cli(
        "upload-dataset", "--bucket", bucket, "--data-dir", str(sample_dataset), "--no-pack"
    )
    assert result.code == 0, result.err
    local = sorted(
        p.relative_to(sample_dataset).as_posix() for p in sample_dataset.rglob("*") if p.is_file()
    )
    prefix = f"fruits/datasets/{sample_dataset.name}/images/"
    assert _keys(s3, prefix) == [prefix + rel for rel in local]


def test_upload_refuses_a_folder_that_is_not_a_dataset(bucket, cli, s3, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("upload-dataset", "--bucket", bucket, "--data-dir", str(tmp_path / "empty"))
    assert result.code == 2
    assert "error:" in result.err
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    missing = cli("upload-dataset", "--bucket", bucket, "--data-dir", str(tmp_path / "nope"))
    assert missing.code == 2
    assert "does not exist" in missing.err


def test_default_key_prefix_is_the_emr_dags(aws, tmp_path):
    config = replace(load_config(), bucket=BUCKET, prefix="fruits", region=REGION)
    data_dir = tmp_path / "Fruits 360"
    assert dag_dataset_prefix(config, data_dir, pack=True) == "fruits/datasets/Fruits-360/packed"
    assert dag_dataset_prefix(config, data_dir, pack=False) == "fruits/datasets/Fruits-360/images"
