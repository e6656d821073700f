"""What the cluster and Serverless operator subclasses share: a sensor's wait sized at run time."""

from __future__ import annotations

from typing import Any


def _as_bool(value: Any) -> bool:
    """A templated flag: an XComArg gives a bool, a Jinja template gives "True"/"False"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def apply_wait(sensor: Any) -> None:
    """Size a sensor's wait at run time from its templated ``wait``
    (``{"poke_interval": s, "timeout": s, "log_wait": s}``) and make its templated
    ``deferrable`` a bool. Shared by the step and job-run sensors."""
    sensor.deferrable = _as_bool(sensor.deferrable)
    if sensor.wait:
        sensor.poke_interval = float(sensor.wait["poke_interval"])
        sensor.timeout = float(sensor.wait["timeout"])
        # Deferrable mode counts attempts, not seconds.
        sensor.max_attempts = max(1, int(sensor.timeout // max(sensor.poke_interval, 1)))
        sensor.log_wait_seconds = float(sensor.wait.get("log_wait", 0))
