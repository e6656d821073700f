"""tests/ordering.py: the order worksteal gets the tests in (slowest first, spread out)."""

from __future__ import annotations

import pytest

from tests import ordering
from tests.ordering import block_sizes, expected_seconds, group_of, order_for_workers


def _blocks(ordered: list[str], workers: int) -> list[list[str]]:
    out, start = [], 0
    for size in block_sizes(len(ordered), workers):
        out.append(ordered[start : start + size])
        start += size
    return out


@pytest.mark.parametrize(
    ("total", "workers", "sizes"), [(10, 3, [3, 3, 4]), (1118, 3, [372, 373, 373]), (5, 2, [2, 3])]
)
def test_block_sizes_are_workstealing_first_split(total, workers, sizes):
    assert block_sizes(total, workers) == sizes


def test_each_block_starts_with_its_share_of_the_slow_tests():
    costs = {"s1": 50.0, "s2": 40.0, "s3": 30.0, "s4": 25.0}
    items = [f"t{i}" for i in range(9)] + list(costs)  # slow ones collected last
    ordered = order_for_workers(items, 3, lambda i: (i, costs.get(i, 0.0)))
    assert sorted(ordered) == sorted(items)  # nothing lost, nothing twice
    blocks = _blocks(ordered, 3)
    assert [b[0] for b in blocks] == ["s1", "s2", "s3"]
    assert blocks[2][1] == "s4"  # to the block expecting the least time (30 s)
    light = [i for i in ordered if i not in costs]
    assert light == [f"t{i}" for i in range(9)]  # the rest keep their order


def test_a_group_stays_in_one_block_and_counts_its_seconds_together():
    def cost(item: str) -> tuple[str, float]:
        return ("job", 20.0) if item.startswith("job") else (item, 0.0)

    items = [f"t{i}" for i in range(6)] + ["job1", "job2", "job3"]
    blocks = _blocks(order_for_workers(items, 3, cost), 3)
    (with_job,) = [b for b in blocks if "job1" in b]
    assert with_job[:3] == ["job1", "job2", "job3"]


def test_short_tests_keep_their_collection_order():
    costs = {"a": 1.0, "b": 4.9, "c": 0.0, "d": 30.0, "e": 0.5, "f": 2.0}
    ordered = order_for_workers(list(costs), 2, lambda i: (i, costs[i]))
    assert ordered == ["d", "a", "b", "c", "e", "f"]  # only d is heavy (>= HEAVY_S)


def test_one_process_keeps_the_collection_order():
    items = ["a", "b", "c"]
    assert order_for_workers(items, 0, lambda i: (i, 99.0 if i == "c" else 0.0)) == items


def test_seconds_come_from_the_last_run_then_the_test_then_its_function(monkeypatch):
    monkeypatch.setattr(ordering, "KNOWN_SECONDS", {"a.py": {"t[x]": 5.0, "t": 7.0}})
    last_run = {"a.py::t[x]": 2.5, "b.py::u": 0.1}
    assert expected_seconds("a.py::t[x]", False, last_run) == 2.5
    assert expected_seconds("a.py::t[x]", False, {}) == 5.0
    assert expected_seconds("a.py::t[y]", False, last_run) == 7.0
    assert expected_seconds("b.py::u", True, last_run) == 0.1  # measured beats the marker
    assert expected_seconds("c.py::v", True, last_run) == ordering.SLOW_DEFAULT_S
    assert expected_seconds("c.py::v", False, last_run) == 0.0


def test_a_grouped_files_tests_are_one_group(monkeypatch):
    monkeypatch.setattr(ordering, "GROUPED_FILES", {"tests/job.py": "job", "tests/tf.py": "job"})
    assert group_of("tests/job.py::test_a") == group_of("tests/tf.py::test_b") == "job"
    assert group_of("tests/other.py::test_a") == "tests/other.py::test_a"


def test_the_known_tests_exist():
    """A renamed or removed test leaves a stale entry: it must go too."""
    from tests.conftest import REPO_ROOT

    for file in ordering.GROUPED_FILES:
        assert (REPO_ROOT / file).is_file(), file
    for file, tests in ordering.KNOWN_SECONDS.items():
        source = (REPO_ROOT / file).read_text()
        for name in tests:
            assert f"def {name.split('[', 1)[0]}(" in source, f"{file}::{name}"
