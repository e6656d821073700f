"""The budget guard's arithmetic, on its own."""

from __future__ import annotations

import pytest

from include.capacity.instance_types import INSTANCE_VCPUS
from include.capacity.prices import ALLOWED_INSTANCE_TYPES, PRICE_TABLE_USD_PER_HOUR
from include.costs.budget import (
    BudgetExceededError,
    check_budget,
    estimate_run_cost,
    images_to_featurise,
    runtime_of,
)
from include.params.defaults import DEFAULT_MAX_COST_USD
from include.params.job_args import JobSettings


def test_estimate_by_hand():
    """8000 images, Keras at 25/s per vCPU, 2 x m5.xlarge core nodes (8 vCPUs), 30 s poll."""
    estimate = estimate_run_cost(
        images=8000,
        runtime="keras",
        instance_type="m5.xlarge",
        core_nodes=2,
        poke_interval_s=30,
        start_bootstrap_s=600,
    )
    assert estimate.core_vcpus == 8
    assert estimate.featurise_s == pytest.approx(8000 / (25 * 8))  # 40 s
    assert estimate.hours == pytest.approx((600 + 40 + 30) / 3600)
    assert estimate.instances == 3
    assert estimate.instance_hours == pytest.approx(3 * 670 / 3600)
    assert estimate.usd_per_instance_hour == pytest.approx(0.214 + 0.048)
    assert estimate.estimated_usd == pytest.approx(3 * 670 / 3600 * 0.262)
    text = estimate.describe()
    assert "8000 images" in text
    assert "keras" in text
    assert "$0.15" in text


def test_runtime_core_nodes_and_images_scale_the_featurisation_time():
    common = {"instance_type": "m5.2xlarge", "poke_interval_s": 60, "start_bootstrap_s": 0}
    keras = estimate_run_cost(images=90_000, runtime="keras", core_nodes=2, **common)
    onnx = estimate_run_cost(images=90_000, runtime="onnx", core_nodes=2, **common)
    assert keras.featurise_s / onnx.featurise_s == pytest.approx(88 / 25)
    four = estimate_run_cost(images=90_000, runtime="keras", core_nodes=4, **common)
    assert four.featurise_s == pytest.approx(keras.featurise_s / 2)
    none = estimate_run_cost(images=0, runtime="keras", core_nodes=2, **common)
    assert none.featurise_s == 0
    assert none.hours == pytest.approx(60 / 3600)


def test_the_default_budget_covers_a_full_fruits_360_run_on_the_default_cluster():
    estimate = estimate_run_cost(
        images=90_000,
        runtime="keras",
        instance_type="m5.xlarge",
        core_nodes=2,
        poke_interval_s=60,
    )
    assert estimate.estimated_usd < DEFAULT_MAX_COST_USD / 10
    check_budget(estimate, DEFAULT_MAX_COST_USD)  # does not raise


def test_over_budget_names_the_estimate_and_the_param_to_raise():
    estimate = estimate_run_cost(
        images=1000, runtime="onnx", instance_type="m5.4xlarge", core_nodes=20, poke_interval_s=60
    )
    with pytest.raises(BudgetExceededError) as failure:
        check_budget(estimate, 1.0)
    message = str(failure.value)
    assert f"estimated ${estimate.estimated_usd:.2f}" in message
    assert "'max_cost_usd'" in message
    assert f"at least {estimate.estimated_usd:.2f}" in message
    check_budget(estimate, estimate.estimated_usd)  # equal is within budget


def test_unknown_names_and_bad_counts_are_refused():
    ok = {
        "images": 1,
        "runtime": "keras",
        "instance_type": "m5.xlarge",
        "core_nodes": 1,
        "poke_interval_s": 1,
    }
    for change, message in (
        ({"runtime": "tpu"}, "no throughput figure for runtime 'tpu'"),
        ({"instance_type": "p4d.24xlarge"}, "no vCPU count"),
        ({"images": -1}, "images must be >= 0"),
        ({"core_nodes": 0}, "core_nodes must be >= 1"),
        ({"poke_interval_s": -1}, "times must be >= 0"),
    ):
        with pytest.raises(ValueError, match=message):
            estimate_run_cost(**{**ok, **change})


def test_every_allowed_instance_type_has_a_vcpu_count_and_a_price():
    assert set(INSTANCE_VCPUS) == set(ALLOWED_INSTANCE_TYPES) == set(PRICE_TABLE_USD_PER_HOUR)


def test_images_to_featurise_follows_the_mini_sample():
    by_label = {"Kiwi": 10, "Lemon": 3, "Apple": 7}
    assert images_to_featurise(by_label, mode="full", max_images=5, per_class=1) == 20
    assert images_to_featurise(by_label, mode="mini", max_images=None, per_class=None) == 20
    assert images_to_featurise(by_label, mode="mini", max_images=None, per_class=4) == 4 + 3 + 4
    assert images_to_featurise(by_label, mode="mini", max_images=8, per_class=4) == 8
    assert images_to_featurise(by_label, mode="mini", max_images=50, per_class=None) == 20
    with pytest.raises(ValueError, match=">= 0"):
        images_to_featurise({"Kiwi": -1}, mode="full", max_images=None, per_class=None)


def test_runtime_comes_from_the_settings_when_they_carry_one():
    assert runtime_of(JobSettings()) == "litert"  # the job's default runtime
    assert runtime_of(JobSettings(runtime="onnx")) == "onnx"
    assert runtime_of(JobSettings(runtime="keras")) == "keras"


def _estimate(region: str):
    return estimate_run_cost(
        images=8000,
        runtime="keras",
        instance_type="m5.xlarge",
        core_nodes=2,
        poke_interval_s=30,
        region=region,
    )


def test_every_allowed_region_estimates_with_its_own_figures():
    from include.config import ALLOWED_REGIONS

    for region in ALLOWED_REGIONS:
        estimate = _estimate(region)
        assert (estimate.priced_as, estimate.price_warning) == (region, None)
        assert estimate.price_source
        assert estimate.to_dict()["priced_as"] == region  # what cost_estimate.json records
    assert _estimate("eu-central-1").estimated_usd > _estimate("eu-west-1").estimated_usd


def test_a_region_without_figures_is_estimated_with_the_fallback_and_says_so(caplog):
    from include.capacity.prices import PRICE_FALLBACK_REGION

    estimate = _estimate("me-nowhere-9")
    assert estimate.priced_as == PRICE_FALLBACK_REGION
    assert estimate.region == "me-nowhere-9"
    assert "me-nowhere-9" in estimate.price_warning
    assert estimate.estimated_usd == pytest.approx(_estimate(PRICE_FALLBACK_REGION).estimated_usd)
    assert "no figures of its own" in estimate.describe()
    assert "no price figures for region 'me-nowhere-9'" in caplog.text


def test_check_run_budget_message_gives_the_estimate_and_the_param():
    """The cluster DAG's check_budget task body: over the budget it fails without a retry."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.costs.budget import check_run_budget
    from include.params.cluster import emr_params

    params = {name: p.value for name, p in emr_params().items()}
    dataset = {"by_split_label": {"Training": {"Kiwi": 50_000, "Lemon": 40_000}}}
    big = {**params, "mode": "full", "core_nodes": 20, "instance_type": "m5.4xlarge"}
    with pytest.raises(AirflowFailException, match=r"estimated \$[0-9.]+: 90000 images") as err:
        check_run_budget("emr", dataset, {**big, "max_cost_usd": 1.0})
    assert "Raise the Param 'max_cost_usd'" in str(err.value)
    estimate = check_run_budget("emr", dataset, big)  # within the default budget
    assert estimate["images"] == 90_000
    assert estimate["max_cost_usd"] == params["max_cost_usd"]
    # Cached features are known only on the cluster (content hashes): every image counted.
    assert estimate["upper_bound_feature_cache"] is True
    mini = check_run_budget("emr", dataset, {**params, "max_images": 200})
    assert mini["images"] == 200
    uncached = check_run_budget("emr", dataset, {**params, "feature_cache": False})
    assert uncached["upper_bound_feature_cache"] is False


def test_check_run_budget_of_serverless_needs_the_region_and_refuses_bad_params():
    from airflow.sdk.exceptions import AirflowFailException

    from include.costs.budget import check_run_budget
    from include.params.serverless import serverless_params

    params = {name: p.value for name, p in serverless_params().items()}
    dataset = {"by_split_label": {"Training": {"Kiwi": 500}}}
    with pytest.raises(AirflowFailException, match="needs the run's region"):
        check_run_budget("emr-serverless", dataset, params)
    with pytest.raises(AirflowFailException, match="pca_variance"):
        check_run_budget(
            "emr-serverless",
            dataset,
            {**params, "pca_variance": None, "pca_k": None},
            region="eu-west-1",
        )
    estimate = check_run_budget("emr-serverless", dataset, params, region="eu-west-1")
    assert estimate["max_cost_usd"] == params["max_cost_usd"]
    with pytest.raises(AirflowFailException, match="Raise the Param 'max_cost_usd'"):
        check_run_budget(
            "emr-serverless", dataset, {**params, "max_cost_usd": 0.0001}, region="eu-west-1"
        )
