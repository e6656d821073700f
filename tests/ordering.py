"""The order pytest-xdist's ``worksteal`` gets the tests in: the slowest first, spread out.

worksteal splits the collected list into one contiguous block per worker (``N // workers``
items, then ``remaining // workers left``, ...); a worker that runs out steals the *tail* of
the longest queue, never what another worker has started. So a long test should sit at the
head of a block, and the long tests should be spread over the blocks: with the slowest
tests all in the first block, one worker would run them one after another while the others
wait for the tail of its queue.

:func:`order_for_workers` gives each block its share of the known-slow tests (largest
first, each to the block with the least expected time: LPT scheduling), at its head, and
fills the blocks up to their sizes with the other tests in collection order (a module's
tests stay together, so its module-scoped fixtures are set up once). Expected seconds come
from :data:`KNOWN_SECONDS`; a ``slow`` test not listed there counts :data:`SLOW_DEFAULT_S`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLOW_DEFAULT_S = 10.0

# Measured (`--durations`, 3 workers on 2 busy cores, 2026-12-07): a test id, a test
# function (every parameter of it), or a whole file. A file's entry is the time of all its
# tests together: they share module-scoped fixtures (one real job), so they stay in one
# block. Stale numbers only make the order less good, never a test fail.
KNOWN_SECONDS: dict[str, float] = {}


def expected_seconds(nodeid: str, is_slow: bool) -> tuple[str, float]:
    """``(group, seconds)`` of a test: its :data:`KNOWN_SECONDS` entry, else per marker.

    Tests of one group (a file listed as a whole) are kept together; any other test is a
    group of its own. Seconds 0 means "not known to be slow".
    """
    file, _, name = nodeid.partition("::")
    function = f"{file}::{name.split('[', 1)[0]}"
    for key in (nodeid, function):
        if key in KNOWN_SECONDS:
            return nodeid, KNOWN_SECONDS[key]
    if file in KNOWN_SECONDS:
        return file, KNOWN_SECONDS[file]
    return nodeid, SLOW_DEFAULT_S if is_slow else 0.0


def block_sizes(total: int, workers: int) -> list[int]:
    """The sizes of worksteal's first blocks (``WorkStealingScheduling.check_schedule``)."""
    sizes = []
    for i in range(workers):
        sizes.append((total - sum(sizes)) // (workers - i))
    return sizes


def order_for_workers(
    items: Sequence[T], workers: int, cost: Callable[[T], tuple[str, float]]
) -> list[T]:
    """``items`` reordered for ``workers`` worksteal workers (see module docstring).

    ``cost(item)`` is ``(group, seconds)``; the items of one group stay together and count
    ``seconds`` once. With fewer than two workers the order is left as it is.
    """
    if workers < 2 or len(items) < workers:
        return list(items)
    groups: dict[str, list[T]] = {}
    seconds: dict[str, float] = {}
    light: list[T] = []
    for item in items:
        group, s = cost(item)
        if s > 0:
            groups.setdefault(group, []).append(item)
            seconds[group] = s
        else:
            light.append(item)
    sizes = block_sizes(len(items), workers)
    blocks: list[list[T]] = [[] for _ in sizes]
    load = [0.0] * workers
    for group in sorted(groups, key=lambda g: -seconds[g]):  # stable: ties keep their order
        members = groups[group]
        room = [b for b in range(workers) if len(blocks[b]) + len(members) <= sizes[b]]
        target = min(room or range(workers), key=lambda b: (load[b], b))
        blocks[target].extend(members)
        load[target] += seconds[group]
    rest = iter(light)
    ordered: list[T] = []
    for block, size in zip(blocks, sizes, strict=True):
        ordered += block
        ordered += [next(rest) for _ in range(max(0, size - len(block)))]
    ordered += list(rest)  # only when a group had no block with room for it
    return ordered
