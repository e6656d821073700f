"""The order pytest-xdist's ``worksteal`` gets the tests in: the slowest first, spread out.

worksteal splits the collected list into one contiguous block per worker (``N // workers``
items, then ``remaining // workers left``, ...); a worker that runs out steals the *tail* of
the longest queue, never what another worker has started. So a long test should sit at the
head of a block, and the long tests should be spread over the blocks: with the slowest
tests all in the first block, one worker would run them one after another while the others
wait for the tail of its queue.

:func:`order_for_workers` gives each block its share of the known-slow tests (largest
first, each to the block with the least expected time: LPT scheduling), at its head, and
fills the blocks up to their sizes with the other tests (under :data:`HEAVY_S`) in
collection order (a module's
tests stay together, so its module-scoped fixtures are set up once).

A test's expected seconds (:func:`expected_seconds`): what it took in the last run here
(``.pytest_cache``, written by tests/conftest.py), else :data:`KNOWN_SECONDS`, else
:data:`SLOW_DEFAULT_S` for a ``slow`` test and 0 ("not known to be slow") for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

SLOW_DEFAULT_S = 10.0
HEAVY_S = 5.0  # a group expected to take less keeps its place in the collection order
CACHE_KEY = "fruits/durations"  # {nodeid: setup + call + teardown seconds} of the last run

# Measured (`--durations`, 3 workers or one process, on 2 cores busy with other sessions'
# tests, 2026-12-07): file -> {test function (every parameter of it) or test id: seconds}.
# Stale numbers only make the order less good, never a test fail.
KNOWN_SECONDS: dict[str, dict[str, float]] = {
    "tests/spark_jobs/test_scan.py": {
        "test_featurisation_reads_the_scan_without_a_shuffle": 80,
        "test_mini_mode_reads_only_the_sampled_files": 60,
    },
    "tests/spark_jobs/test_runtimes.py": {
        "test_conversion_in_a_subprocess_reports_unusable_weights": 78,
        "test_fast_runtime_gives_kerass_features": 25,
        "test_other_weights_give_other_features": 19,
        "test_model_key_follows_weights_content_and_image_size": 15,  # TensorFlow's import
    },
    "tests/spark_jobs/test_features.py": {
        "test_featurize_contents_marks_bad_rows_and_never_emits_zero_vectors": 42,  # models
    },
    "tests/dags/test_fruits_local_pipeline.py": {
        "test_prepared_arguments_come_from_the_shared_builder": 60,
    },
    "tests/dags/test_fruits_emr_pipeline.py": {
        "test_happy_path_uploads_creates_downloads_and_terminates": 60,
        "test_add_step_retry_does_not_add_the_step_twice": 42,
        "test_fault_matrix_terminates_cluster_and_fails_run": 30,
        "test_create_retry_reuses_the_run_cluster_instead_of_paying_for_another": 20,
    },
    "tests/dags/test_fruits_emr_serverless_pipeline.py": {
        "test_shared_application_is_reused_and_only_stopped": 61,
        "test_retries_reuse_the_application_and_the_job_run": 41,
        "test_happy_path_creates_runs_downloads_and_deletes": 21,
        "test_fault_matrix_leaves_nothing_running_and_fails_run": 18,
    },
    "tests/dags/test_fruits_emr_sweeper.py": {
        "test_sweeper_terminates_only_old_tagged_clusters_whose_run_is_over": 56,
    },
    "tests/spark_jobs/test_transforms.py": {
        "test_sample_is_deterministic_and_independent_of_partitioning": 24,
        "test_relative_path_is_the_same_for_every_location": 22,
    },
    "tests/test_compose.py": {"test_aws_conn_uri_switches_to_real_aws": 13},
    "tests/spark_jobs/test_pca.py": {
        "test_partials_are_merged_on_executors_under_a_small_max_result_size": 12,
    },
}

# Files whose tests share an expensive fixture -> the group that keeps them in one block,
# so that it is made once: a module-scoped one (one real job whose output several tests
# assert on, a running Airflow, a Spark frame), or the session's converted models
# (TensorFlow imported and MobileNetV2 converted in the worker, ~10-40 s).
GROUPED_FILES: dict[str, str] = {
    "tests/spark_jobs/test_job.py": "tests/spark_jobs/test_job.py",
    "tests/spark_jobs/test_feature_cache.py": "tests/spark_jobs/test_feature_cache.py",
    "tests/spark_jobs/test_features.py": "converted_models",
    "tests/spark_jobs/test_runtimes.py": "converted_models",
    "tests/spark_jobs/test_pca.py": "tests/spark_jobs/test_pca.py",
    "tests/spark_jobs/test_transforms.py": "tests/spark_jobs/test_transforms.py",
    "tests/integration/test_scheduler.py": "tests/integration/test_scheduler.py",
    "tests/test_compose.py": "tests/test_compose.py",
}


def expected_seconds(nodeid: str, is_slow: bool, measured: Mapping[str, float]) -> float:
    """A test's expected seconds: ``measured`` (the last run), the table, or per marker."""
    if nodeid in measured:
        return float(measured[nodeid])
    file, _, name = nodeid.partition("::")
    known = KNOWN_SECONDS.get(file, {})
    for key in (name, name.split("[", 1)[0]):
        if key in known:
            return float(known[key])
    return SLOW_DEFAULT_S if is_slow else 0.0


def group_of(nodeid: str) -> str:
    """The tests that must stay together: a grouped file's group, else each test alone."""
    return GROUPED_FILES.get(nodeid.partition("::")[0], nodeid)


def block_sizes(total: int, workers: int) -> list[int]:
    """The sizes of worksteal's first blocks (``WorkStealingScheduling.check_schedule``)."""
    sizes: list[int] = []
    for i in range(workers):
        sizes.append((total - sum(sizes)) // (workers - i))
    return sizes


def order_for_workers(
    items: Sequence[T], workers: int, cost: Callable[[T], tuple[str, float]]
) -> list[T]:
    """``items`` reordered for ``workers`` worksteal workers (see module docstring).

    ``cost(item)`` is ``(group, seconds)``; the items of one group stay together and their
    seconds add up; a group under :data:`HEAVY_S` is light. With fewer than two workers the
    order is left as it is.
    """
    if workers < 2 or len(items) < workers:
        return list(items)
    groups: dict[str, list[T]] = {}
    seconds: dict[str, float] = {}
    for item in items:
        group, s = cost(item)
        groups.setdefault(group, []).append(item)
        seconds[group] = seconds.get(group, 0.0) + s
    heavy = sorted((g for g in groups if seconds[g] >= HEAVY_S), key=lambda g: -seconds[g])
    light = [item for g, members in groups.items() if seconds[g] < HEAVY_S for item in members]
    sizes = block_sizes(len(items), workers)
    blocks: list[list[T]] = [[] for _ in sizes]
    load = [0.0] * workers
    for group in heavy:  # stable: ties keep their collection order
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
