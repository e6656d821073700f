"""HTML helpers of the run report, shared by the report (:mod:`include.results.report`) and
its EMR Serverless cost section (:mod:`include.results.serverless_cost`).

``esc`` escapes a value, ``table`` renders headers and rows, ``fmt`` formats a number
(``n/a`` for None).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 label"``, ``"2 labels"``, ``"1,000 images"``: a count with its noun agreeing."""
    word = noun if count == 1 else (plural_form or f"{noun}s")
    return f"{count:,} {word}"


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)
