"""One preflight result (:class:`Check`), shared by :mod:`include.infra.preflight` and
:mod:`include.infra.network_checks`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class Check:
    """One preflight result: ``ok`` True (passed), False (failed) or None (could not check)."""

    name: str
    ok: bool | None
    reason: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "WARN"}[self.ok]
        return f"{mark} {self.name}: {self.reason}" + (f" -> {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` (``NoSuchEntity``, ``AccessDenied``, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
"""Error codes of a read the caller may not make: a check says so (WARN), never crashes."""


def denied(name: str, exc: ClientError, needs: str) -> Check:
    """The warning of a check whose read was denied; ``needs``: the IAM action(s) to allow."""
    return Check(name, None, f"could not check ({error_code(exc)})", f"allow {needs}")
