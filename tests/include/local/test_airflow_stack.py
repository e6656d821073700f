"""The native stack's environment (``make airflow``); the stack itself runs in
tests/integration/test_scheduler.py and tests/integration/test_ui_plugin.py."""

from __future__ import annotations

from include.config import REPO_ROOT
from include.local.airflow_stack import StackSettings, stack_env


def test_the_dags_start_unpaused_and_the_plugins_folder_is_the_projects(tmp_path):
    env = stack_env(StackSettings(home=tmp_path), base={"AWS_PROFILE": "prod"})
    # A run triggered from the UI runs at once instead of sitting queued behind a pause.
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO_ROOT / "plugins")
    assert "AWS_PROFILE" not in env  # never a real AWS profile from this stack
