"""tests/ordering.py: the order worksteal gets the tests in (slowest first, spread out)."""

from __future__ import annotations

import pytest

from tests import ordering
from tests.ordering import block_sizes, expected_seconds, order_for_workers


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


def test_a_group_stays_in_one_block():
    def cost(item: str) -> tuple[str, float]:
        return ("job", 60.0) if item.startswith("job") else (item, 0.0)

    items = [f"t{i}" for i in range(6)] + ["job1", "job2", "job3"]
    blocks = _blocks(order_for_workers(items, 3, cost), 3)
    (with_job,) = [b for b in blocks if "job1" in b]
    assert with_job[:3] == ["job1", "job2", "job3"]


def test_one_process_keeps_the_collection_order():
    items = ["a", "b", "c"]
    assert order_for_workers(items, 0, lambda i: (i, 99.0 if i == "c" else 0.0)) == items


def test_seconds_come_from_the_test_then_its_function_then_its_file(monkeypatch):
    monkeypatch.setattr(
        ordering,
        "KNOWN_SECONDS",
        {"a.py::t[x]": 5.0, "a.py::t": 7.0, "b.py": 30.0},
    )
    assert expected_seconds("a.py::t[x]", is_slow=False) == ("a.py::t[x]", 5.0)
    assert expected_seconds("a.py::t[y]", is_slow=False) == ("a.py::t[y]", 7.0)
    assert expected_seconds("b.py::u", is_slow=False) == ("b.py", 30.0)  # the file's group
    assert expected_seconds("c.py::v", is_slow=True) == ("c.py::v", ordering.SLOW_DEFAULT_S)
    assert expected_seconds("c.py::v", is_slow=False) == ("c.py::v", 0.0)
