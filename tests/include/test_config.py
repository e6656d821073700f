from __future__ import annotations

import pytest

from include import config


def test_defaults_are_eu_and_derive_log_uri(monkeypatch):
    for name in ("FRUITS_REGION", "FRUITS_BUCKET", "FRUITS_PREFIX", "FRUITS_EMR_LOG_URI"):
        monkeypatch.delenv(name, raising=False)
    cfg = config.load_config()
    assert cfg.region == "eu-west-1"
    assert cfg.s3_base == "s3://fruits-features-bucket/fruits"
    assert cfg.log_uri == "s3://fruits-features-bucket/fruits/logs/emr/"


def test_env_overrides_are_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("FRUITS_BUCKET", "my-bucket")
    monkeypatch.setenv("FRUITS_PREFIX", "/team/fruits/")
    monkeypatch.setenv("FRUITS_REGION", "eu-central-1")
    monkeypatch.setenv("FRUITS_EMR_LOG_URI", "s3://logs-bucket/emr/")
    monkeypatch.setenv("FRUITS_EXTRA_TAGS", "CostCenter=42, Team=data")
    monkeypatch.setenv("FRUITS_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("FRUITS_CLUSTER_TTL_HOURS", "3")
    cfg = config.load_config()
    assert cfg.s3_base == "s3://my-bucket/team/fruits"
    assert cfg.region == "eu-central-1"
    assert cfg.log_uri == "s3://logs-bucket/emr/"
    assert cfg.extra_tags == {"CostCenter": "42", "Team": "data"}
    assert cfg.results_dir == tmp_path
    assert cfg.cluster_ttl_hours == 3


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FRUITS_REGION", "us-east-1", "EU only"),
        ("FRUITS_CLUSTER_TTL_HOURS", "soon", "must be an integer"),
        ("FRUITS_CLUSTER_TTL_HOURS", "0", "positive number"),
        ("FRUITS_EXTRA_TAGS", "novalue", "key=value"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        config.load_config()


def test_schedules(monkeypatch):
    monkeypatch.delenv("FRUITS_EMR_SCHEDULE", raising=False)
    assert config.emr_schedule() is None
    monkeypatch.setenv("FRUITS_EMR_SCHEDULE", "0 3 * * 1")
    assert config.emr_schedule() == "0 3 * * 1"
    monkeypatch.setenv("FRUITS_SWEEPER_SCHEDULE", "*/30 * * * *")
    assert config.sweeper_schedule() == "*/30 * * * *"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "imagenet"), ("", "imagenet"), ("none", "none")]
)
def test_weights_default_follows_fruits_weights(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("FRUITS_WEIGHTS", raising=False)
    else:
        monkeypatch.setenv("FRUITS_WEIGHTS", value)
    assert config.weights_default() == expected


def test_the_trigger_forms_weights_default_is_fruits_weights(monkeypatch):
    from include.params.common import job_params

    monkeypatch.setenv("FRUITS_WEIGHTS", "none")
    assert job_params()["weights"].value == "none"
    monkeypatch.delenv("FRUITS_WEIGHTS")
    assert job_params()["weights"].value == "imagenet"
