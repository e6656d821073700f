"""Skip-or-run decisions and the last-success record stores (local folder and S3 on moto)."""

from __future__ import annotations

import json

import boto3
import pytest

from include.params.job_args import JobSettings
from include.reruns.fingerprint import LAST_SUCCESS_FILE, build_success_record
from include.reruns.history import (
    decide,
    fingerprint_run,
    local_results_exist,
    read_local_record,
    read_s3_record,
    record_key,
    s3_object_checksum,
    s3_results_exist,
    write_local_record,
    write_s3_record,
)

BUCKET = "fruits-history-bucket"
REGION = "eu-west-1"


def _record(fingerprint, results_uri="/tmp/results/r1", report_uri="/tmp/results/r1/report.html"):
    return build_success_record(
        fingerprint,
        dag_id="fruits_local_pipeline",
        run_id="manual__r1",
        run_key="r1",
        results_uri=results_uri,
        report_uri=report_uri,
        finished_at="2026-12-02T00:00:00+00:00",
    )


@pytest.fixture
def fingerprint(sample_dataset):
    return fingerprint_run(JobSettings(weights="none"), sample_dataset)[1]


def test_decide_skips_only_an_unchanged_run_whose_results_exist(fingerprint):
    record = _record(fingerprint)
    skip = decide(record, fingerprint, force=False, earlier_results_exist=True)
    assert skip.skip
    assert "run manual__r1 holds the same results at /tmp/results/r1" in skip.reason
    assert "report: /tmp/results/r1/report.html" in skip.reason

    forced = decide(record, fingerprint, force=True, earlier_results_exist=True)
    assert not forced.skip
    assert "force is set" in forced.reason
    gone = decide(record, fingerprint, force=False, earlier_results_exist=False)
    assert not gone.skip
    assert "are gone" in gone.reason
    first = decide(None, fingerprint, force=False, earlier_results_exist=False)
    assert not first.skip
    assert "no earlier successful run" in first.reason
    other = {**fingerprint, "fingerprint": "0" * 64}
    changed = decide(record, other, force=False, earlier_results_exist=True)
    assert not changed.skip
    assert "is new" in changed.reason


def test_fingerprint_run_hashes_a_weights_file_and_refuses_a_missing_one(sample_dataset, tmp_path):
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"one")
    _, first = fingerprint_run(JobSettings(weights=str(weights)), sample_dataset)
    weights.write_bytes(b"two")  # rewritten in place: other weights
    _, second = fingerprint_run(JobSettings(weights=str(weights)), sample_dataset)
    assert first["fingerprint"] != second["fingerprint"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fingerprint_run(JobSettings(weights=str(tmp_path / "missing.h5")), sample_dataset)


def test_local_record_round_trip_and_damaged_record(tmp_path, fingerprint):
    assert read_local_record(tmp_path) is None
    run_dir = tmp_path / "r1"
    record = _record(fingerprint, results_uri=str(run_dir))
    write_local_record(tmp_path, record)
    assert read_local_record(tmp_path) == record
    assert [p.name for p in tmp_path.iterdir()] == [LAST_SUCCESS_FILE]  # no temp file left
    assert not local_results_exist(record)
    run_dir.mkdir()
    (run_dir / "_SUCCESS").write_bytes(b"")
    assert local_results_exist(record)
    (tmp_path / LAST_SUCCESS_FILE).write_text("{not json")
    assert read_local_record(tmp_path) is None  # a damaged record never skips a run


@pytest.fixture
def s3():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield client


def test_s3_record_round_trip_is_encrypted_and_checks_the_earlier_results(s3, fingerprint):
    from include.staging.s3 import make_s3_hook

    hook = make_s3_hook(None)
    key = record_key("fruits/results/")
    assert key == f"fruits/results/{LAST_SUCCESS_FILE}"
    assert read_s3_record(hook, BUCKET, key) is None
    record = _record(fingerprint, results_uri=f"s3://{BUCKET}/fruits/results/r1")
    write_s3_record(hook, BUCKET, key, record)
    assert read_s3_record(hook, BUCKET, key) == json.loads(json.dumps(record))
    assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"

    assert not s3_results_exist(hook, record)
    s3.put_object(Bucket=BUCKET, Key="fruits/results/r1/_SUCCESS", Body=b"")
    assert s3_results_exist(hook, record)
    assert not s3_results_exist(hook, {"results_uri": "/local/folder"})

    s3.put_object(Bucket=BUCKET, Key=key, Body=b"[1, 2")
    assert read_s3_record(hook, BUCKET, key) is None


def test_s3_weights_checksum_comes_from_head_object(s3):
    from include.staging.s3 import make_s3_hook

    hook = make_s3_hook(None)
    s3.put_object(Bucket=BUCKET, Key="models/w.h5", Body=b"weights")
    first = s3_object_checksum(hook, f"s3://{BUCKET}/models/w.h5")
    assert first.startswith("etag:")
    s3.put_object(Bucket=BUCKET, Key="models/w.h5", Body=b"other weights")
    assert s3_object_checksum(hook, f"s3://{BUCKET}/models/w.h5") != first
    with pytest.raises(FileNotFoundError, match="does not exist"):
        s3_object_checksum(hook, f"s3://{BUCKET}/models/missing.h5")
