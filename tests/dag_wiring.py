"""The thin check that a DAG's task calls its include/ function (the bodies are tested in
tests/include/ on their own)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def assert_task_calls(task: Any, wired: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """``task`` returns what its function returns, called with ``wired``'s expected call.

    The function is replaced where the DAG file looks it up when the task runs: in its
    module (``emr_tasks.validate_params``), or, for a name the DAG file imported, in the
    DAG file's globals.
    """
    module, name, kwargs, expected = wired
    calls = []

    def record(*args: Any, **kw: Any) -> dict[str, str]:
        calls.append((args, kw))
        return {"returned": task.task_id}

    if module.startswith("dags."):
        monkeypatch.setitem(task.python_callable.__globals__, name, record)
    else:
        monkeypatch.setattr(importlib.import_module(module), name, record)
    assert task.python_callable(**kwargs) == {"returned": task.task_id}
    assert calls == [expected]


class XComOf:
    """A task instance whose ``xcom_pull`` returns ``value`` and records what was asked."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.asked: list[str] = []

    def xcom_pull(self, task_ids: str) -> Any:
        self.asked.append(task_ids)
        return self.value
