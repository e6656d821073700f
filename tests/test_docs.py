"""The README and docs/ render and hold together: relative links reach a file (and heading),
tables are whole (no blank line inside one, one column count per table), and the README
stays a map: short, with the quick start on its first screen."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
README_MAX_LINES = 220
QUICK_START_BY_LINE = 25

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation but `-` and `_` dropped,
    each space a hyphen."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for _, line in _prose_lines(path.read_text())
        if re.match(r"^#{1,6} ", line)
    }


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, line in _prose_lines(path.read_text()):
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"{path.name}:{number}: {target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{path.name}:{number}: {target}: no such heading")
    return problems


def broken_tables(path: Path) -> list[str]:
    """Tables that do not render: a block of `|` rows must be header, separator, rows, all
    with the header's column count (a blank line inside a table starts a new block whose
    second row is no separator: its rows show as raw pipes)."""
    problems: list[str] = []
    block: list[tuple[int, str]] = []
    for number, line in [*_prose_lines(path.read_text()), (0, "")]:
        if line.startswith("|"):
            block.append((number, line))
            continue
        if block:
            problems += _table_problems(path.name, block)
            block = []
    return problems


def _table_problems(name: str, block: list[tuple[int, str]]) -> list[str]:
    first = block[0][0]
    if len(block) < 2 or not _SEPARATOR.match(block[1][1]):
        return [f"{name}:{first}: table rows without a header and separator row"]
    columns = _cells(block[0][1])
    return [
        f"{name}:{number}: {_cells(line)} columns, the header has {columns}"
        for number, line in block[1:]
        if _cells(line) != columns
    ]


def _cells(row: str) -> int:
    row = re.sub(r"`[^`]*`", "``", row.replace("\\|", ""))
    return row.strip().strip("|").count("|") + 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_tables_render(page):
    assert broken_tables(page) == []


def test_the_readme_is_a_map():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, "move the detail to a page under docs/"
    assert "## Quick start" in lines[:QUICK_START_BY_LINE]


def test_the_checks_find_what_they_look_for(tmp_path):
    """A table split by a blank line, a short row, a missing file and a missing heading."""
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: `x.py`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n\n"
        "| a | b |\n|---|---|\n| 1 |\n| `x|y` | \\| |\n\n"
        "[ok](other.md#a-section-xpy) [gone](missing.md) [bad](other.md#nowhere) "
        "[web](https://example.com) `[code](missing.md)`\n"
    )
    assert broken_tables(page) == [
        "page.md:5: table rows without a header and separator row",
        "page.md:9: 1 columns, the header has 2",
    ]
    assert broken_links(page) == [
        "page.md:12: missing.md: no such file",
        "page.md:12: other.md#nowhere: no such heading",
    ]


@pytest.mark.parametrize("home", [".airflow", ".airflow-ui"])
def test_generated_airflow_homes_are_ignored_and_cleaned(home):
    """`make run` and `make airflow` write an Airflow home each: git ignores both (asked of
    git itself) and `make clean` removes both, as the README's layout says."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{home}/airflow.db"], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0, f"{home}/ is not in .gitignore"
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = makefile.split("\nclean:", 1)[1].split("\n\n", 1)[0]
    assert f" {home} " in recipe, f"make clean does not remove {home}/"
