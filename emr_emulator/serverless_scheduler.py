"""EMR Serverless job concurrency and queuing: an application's scheduler settings.

:func:`scheduler_configuration` is what an application's ``schedulerConfiguration`` (or its
release's default) comes to; :class:`emr_emulator.serverless.ServerlessEngine` queues job runs
by it. The emulator's own table of AWS's rules, each with the document it comes from.
"""

from __future__ import annotations

from typing import Any

# Job concurrency and queuing (EMR Serverless User Guide, "Job concurrency and queuing for an
# EMR Serverless application": from emr-7.0.0 with a schedulerConfiguration, "enabled by
# default on Amazon EMR release 7.3.0 and higher"; API reference, SchedulerConfiguration:
# maxConcurrentRuns default 15, 1 to 1000; queueTimeoutMinutes default 360, 15 to 720). A run
# "waits in [QUEUED] when application level job run concurrency is fully occupied" (User
# Guide, "Job run states"); "If queue timeout is reached earlier, your job times out", and a
# timed-out run goes CANCELLING -> CANCELLED ("Job run states", Cancelling).
QUEUING_FROM = (7, 0, 0)
QUEUING_BY_DEFAULT_FROM = (7, 3, 0)
SCHEDULER_DEFAULTS = {"maxConcurrentRuns": 15, "queueTimeoutMinutes": 360}
SCHEDULER_RANGES = {"maxConcurrentRuns": (1, 1000), "queueTimeoutMinutes": (15, 720)}


def _release(label: str) -> tuple[int, ...]:
    """``emr-7.12.0`` -> (7, 12, 0); () when it is not an EMR release label."""
    parts = label.removeprefix("emr-").split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


def scheduler_configuration(
    release_label: str, requested: dict[str, Any] | None
) -> dict[str, int] | None:
    """The application's job concurrency and queuing settings, None when it has none (before
    emr-7.3.0 without a ``schedulerConfiguration``). Raises ValueError (the API answers
    ValidationException) for values or a release AWS refuses."""
    release = _release(release_label)
    if requested is None:
        if release and release >= QUEUING_BY_DEFAULT_FROM:
            return dict(SCHEDULER_DEFAULTS)
        return None
    if release and release < QUEUING_FROM:
        raise ValueError(
            f"schedulerConfiguration is supported with release labels emr-7.0.0 and above, "
            f"not {release_label}"
        )
    settings = dict(SCHEDULER_DEFAULTS)
    for key, value in requested.items():
        if key not in SCHEDULER_RANGES:
            raise ValueError(f"schedulerConfiguration has no {key!r}")
        low, high = SCHEDULER_RANGES[key]
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(
                f"schedulerConfiguration.{key} must be between {low} and {high}, got {value!r}"
            )
        settings[key] = value
    return settings
