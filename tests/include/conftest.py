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
