"""Params of the scheduled-run guards: force and max_cost_usd."""

from __future__ import annotations

import pytest

from include.params.cluster import emr_params
from include.params.common import guard_params, guard_settings_from_params
from include.params.defaults import DEFAULT_MAX_COST_USD
from include.params.job_args import JobSettings


def test_guard_params_are_on_the_emr_form_and_the_budget_only_there():
    assert set(guard_params(emr=True)) == {"force", "feature_cache", "max_cost_usd"}
    assert set(guard_params(emr=False)) == {"force", "feature_cache"}
    assert set(guard_params(emr=True)) <= set(emr_params())
    budget = emr_params()["max_cost_usd"]
    assert budget.value == DEFAULT_MAX_COST_USD
    assert budget.schema["exclusiveMinimum"] == 0


def test_guards_are_not_job_settings():
    """force and the budget decide whether a run happens, not what it computes: they must
    not enter the fingerprint (which takes every JobSettings field)."""
    fields = set(JobSettings.__dataclass_fields__)
    assert not fields & set(guard_params(emr=True))


def test_guard_settings_defaults_and_values():
    assert guard_settings_from_params({}, emr=True).max_cost_usd == DEFAULT_MAX_COST_USD
    assert guard_settings_from_params({}, emr=False).max_cost_usd is None
    settings = guard_settings_from_params({"force": True, "max_cost_usd": 12}, emr=True)
    assert settings.force is True
    assert settings.max_cost_usd == 12.0
    assert settings.feature_cache is True  # reuse is on by default
    assert guard_settings_from_params({"feature_cache": False}, emr=False).feature_cache is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"force": "yes"}, "force must be true or false"),
        ({"feature_cache": "no"}, "feature_cache must be true or false"),
        ({"max_cost_usd": 0}, "max_cost_usd must be > 0"),
        ({"max_cost_usd": None}, "max_cost_usd must be a number"),
        ({"max_cost_usd": True}, "max_cost_usd must be a number"),
    ],
)
def test_bad_guard_values_are_refused_with_the_param_named(params, message):
    with pytest.raises(ValueError, match=message):
        guard_settings_from_params(params, emr=True)


def test_trigger_form_rejects_a_non_positive_budget():
    from airflow.sdk import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(emr_params())
    with pytest.raises(ParamValidationError, match="max_cost_usd"):
        params["max_cost_usd"] = 0
