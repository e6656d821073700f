"""The report's HTML helpers."""

from __future__ import annotations

import pytest

from include.results.html import esc, plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 labels"), (1, "1 label"), (2, "2 labels"), (1_000, "1,000 labels")],
)
def test_plural_agrees_with_the_count(count, expected):
    assert plural(count, "label") == expected


def test_plural_takes_an_irregular_form():
    assert plural(1, "class", "classes") == "1 class"
    assert plural(3, "class", "classes") == "3 classes"


def test_esc_escapes_markup():
    assert esc("<b>&") == "&lt;b&gt;&amp;"
