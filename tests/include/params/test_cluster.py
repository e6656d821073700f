"""Params: typed trigger form, defaults that validate, clear errors for bad combinations."""

from __future__ import annotations

import pytest

from include.capacity.prices import ALLOWED_INSTANCE_TYPES
from include.params.cluster import emr_params, emr_settings_from_params, min_idle_timeout_seconds
from include.params.common import job_params, job_settings_from_params
from include.params.defaults import (
    DEFAULT_RELEASE_LABEL,
    POKE_INTERVAL_BY_MODE,
    STEP_TIMEOUT_BY_MODE,
)


def test_every_param_is_documented_for_the_form():
    for name, param in emr_params().items():
        assert param.schema.get("title"), f"{name} has no title"
        assert param.description, f"{name} has no description"
        assert "type" in param.schema, f"{name} has no type"


def test_job_params_are_a_subset_and_fresh_each_call():
    job, emr = job_params(), emr_params()
    assert set(job) <= set(emr)
    assert {"instance_type", "core_nodes", "spot_core_nodes", "release_label"} <= set(emr)
    assert job_params() is not job  # no shared mutable module state


def test_instance_type_enum_is_the_price_list():
    assert emr_params()["instance_type"].schema["enum"] == list(ALLOWED_INSTANCE_TYPES)


def test_defaults_give_valid_settings():
    settings = emr_settings_from_params({})
    assert settings.job.mode == "mini"
    assert settings.job.pca_variance == 0.95
    assert settings.job.pca_k is None
    assert settings.release_label == DEFAULT_RELEASE_LABEL
    assert settings.poke_interval_seconds == POKE_INTERVAL_BY_MODE["mini"]
    assert settings.step_timeout_seconds == STEP_TIMEOUT_BY_MODE["mini"]


def test_full_mode_drops_sampling_and_waits_longer():
    settings = emr_settings_from_params({"mode": "full", "max_images": 10, "per_class": 3})
    assert settings.job.max_images is None
    assert settings.job.per_class is None
    assert settings.step_timeout_seconds == STEP_TIMEOUT_BY_MODE["full"]
    assert settings.step_timeout_seconds > STEP_TIMEOUT_BY_MODE["mini"]


def test_pca_solver_defaults_to_gram_and_takes_mllib():
    assert job_settings_from_params({}).pca_solver == "gram"
    assert job_settings_from_params({"pca_solver": "mllib"}).pca_solver == "mllib"
    with pytest.raises(ValueError, match="pca_solver"):
        job_settings_from_params({"pca_solver": "svd"})


def test_fixed_k_wins_over_variance_default():
    job = job_settings_from_params({"pca_k": 50})
    assert job.pca_k == 50
    assert job.pca_variance is None


def test_explicit_sensor_sizing_is_kept():
    settings = emr_settings_from_params({"poke_interval_seconds": 2, "step_timeout_seconds": 9})
    assert (settings.poke_interval_seconds, settings.step_timeout_seconds) == (2, 9)


def test_blank_dataset_dir_means_config_default():
    assert emr_settings_from_params({"dataset_dir": "  "}).dataset_dir is None
    assert emr_settings_from_params({"dataset_dir": "/data/f"}).dataset_dir == "/data/f"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "huge"}, "mode must be 'mini' or 'full'"),
        ({"pca_variance": None, "pca_k": None}, "set either pca_variance"),
        ({"pca_variance": 1.5}, "pca_variance must be in"),
        ({"pca_k": 0}, "pca_k must be between 1 and 1280"),
        ({"pca_k": 2.5}, "pca_k must be an integer"),
        ({"max_images": 0}, "max_images must be >= 1"),
        ({"per_class": "3"}, "per_class must be an integer"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"weights": " "}, "weights must be"),
        ({"image_size": 8}, "image_size must be between"),
        ({"batch_size": 0}, "batch_size must be between"),
        ({"instance_type": "p4d.24xlarge"}, "instance_type 'p4d.24xlarge' is not allowed"),
        ({"core_nodes": 0}, "core_nodes must be between 1 and"),
        ({"core_nodes": True}, "core_nodes must be an integer"),
        ({"spot_core_nodes": "yes"}, "spot_core_nodes must be true or false"),
        ({"release_label": "emr-6.15.0"}, "release_label must be an emr-7.x label"),
        ({"idle_timeout_minutes": 0}, "idle_timeout_minutes must be between"),
        ({"poke_interval_seconds": 0}, "poke_interval_seconds must be >= 1"),
        ({"step_log_wait_seconds": -1}, "step_log_wait_seconds must be between 0 and"),
        ({"step_log_wait_seconds": 10**6}, "step_log_wait_seconds must be between 0 and"),
        ({"dataset_dir": 3}, "dataset_dir must be a folder path"),
    ],
)
def test_bad_values_raise_clear_errors(params, message):
    with pytest.raises(ValueError, match=message):
        emr_settings_from_params(params)


@pytest.mark.parametrize(
    ("params", "shortest_minutes"),
    [
        # poll 30 s (mini) + retry delay 120 s + 60 s margin = 210 s -> 4 min
        ({"idle_timeout_minutes": 3}, 4),
        # poll 60 s (full) + 120 s + 60 s = 240 s -> 4 min
        ({"mode": "full", "idle_timeout_minutes": 3}, 4),
        # a slow poll of 10 min makes even 12 minutes too short: 600 + 120 + 60 = 780 s
        ({"poke_interval_seconds": 600, "idle_timeout_minutes": 12}, 13),
    ],
)
def test_idle_timeout_shorter_than_create_to_add_step_is_refused(params, shortest_minutes):
    with pytest.raises(ValueError, match=f"use at least {shortest_minutes} minutes"):
        emr_settings_from_params(params)
    ok = emr_settings_from_params({**params, "idle_timeout_minutes": shortest_minutes})
    assert ok.idle_timeout_minutes * 60 >= min_idle_timeout_seconds(ok.poke_interval_seconds)


def test_step_log_wait_defaults_to_seven_minutes_and_reaches_the_plan(tmp_path):
    from include.config import PipelineConfig
    from include.emr.plan import build_run_plan

    settings = emr_settings_from_params({"step_log_wait_seconds": 5})
    plan = build_run_plan(settings, PipelineConfig(results_dir=tmp_path), dag_id="d", run_id="r")
    assert plan["wait"]["log_wait"] == 5
    assert emr_settings_from_params({}).step_log_wait_seconds == 7 * 60
