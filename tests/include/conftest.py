"""Fixtures shared by the include/ tests."""

from __future__ import annotations

import boto3
import pytest


@pytest.fixture
def s3_hook(request):
    """An S3Hook inside moto, with the test module's ``BUCKET`` made in its ``REGION``."""
    from moto import mock_aws

    bucket, region = request.module.BUCKET, request.module.REGION
    with mock_aws():
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        boto3.client("s3", region_name=region).create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
        )
        yield S3Hook(aws_conn_id=None, region_name=region)


@pytest.fixture
def run_env(request, monkeypatch, tmp_path):
    """The configuration of one run (``FRUITS_*``): the test module's ``BUCKET`` and
    ``REGION``, results under tmp_path, no configured S3 dataset."""
    monkeypatch.setenv("FRUITS_BUCKET", request.module.BUCKET)
    monkeypatch.setenv("FRUITS_PREFIX", "fruits")
    monkeypatch.setenv("FRUITS_REGION", request.module.REGION)
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("FRUITS_DATASET_URI", raising=False)


@pytest.fixture
def run_account(run_env, s3_hook):
    """:func:`run_env` in a moto account holding only the run's bucket."""
    return s3_hook


@pytest.fixture
def assert_refused(monkeypatch):
    """``check(validate, params, environment, message)``: with ``environment`` set, ``validate``
    (a DAG's validate_params) refuses ``params`` with one clear, non-retried failure."""
    from airflow.sdk.exceptions import AirflowFailException

    def check(validate, params, environment, message):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(AirflowFailException, match="Invalid run settings") as failure:
            validate(params)
        assert message in str(failure.value)

    return check
