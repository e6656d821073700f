"""``make airflow``'s environment (the stack itself runs in tests/integration/)."""

from __future__ import annotations

from include.config import REPO_ROOT
from include.local.airflow_stack import StackSettings, stack_env


def test_the_stack_passes_its_weights_decision_to_every_component(tmp_path):
    offline = stack_env(StackSettings(home=tmp_path, weights="none"), base={})
    online = stack_env(StackSettings(home=tmp_path), base={})

    assert offline["FRUITS_WEIGHTS"] == "none"
    assert online["FRUITS_WEIGHTS"] == "imagenet"


def test_the_stack_never_inherits_an_aws_profile(tmp_path):
    env = stack_env(StackSettings(home=tmp_path), base={"AWS_PROFILE": "prod"})

    assert "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_the_dags_start_unpaused_and_the_plugins_folder_is_the_projects(tmp_path):
    env = stack_env(StackSettings(home=tmp_path), base={})
    # A run triggered from the UI runs at once instead of sitting queued behind a pause.
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO_ROOT / "plugins")
