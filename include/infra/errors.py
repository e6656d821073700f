"""Errors the CLI turns into a message and an exit code (no traceback for expected failures)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
"""An AWS call failed, or the command could not finish."""
EXIT_REFUSED = 2
"""Invalid input, or a command refused to act (no confirmation, not the project's resource)."""
EXIT_TTL_EXCEEDED = 3
"""``status``: at least one of the project's clusters is older than the TTL."""


class InfraError(Exception):
    """A failure with a message meant for the user, and the exit code that goes with it."""

    exit_code = EXIT_FAILURE


class RefusedError(InfraError):
    """Bad input or a refusal: nothing was changed."""

    exit_code = EXIT_REFUSED
