"""The job's command line: the contract with include/params/job_args.py, argument errors."""

from __future__ import annotations

import pytest

from include.params.job_args import JobSettings, build_job_arguments
from spark_jobs import cli


def test_parses_what_the_dags_build():
    settings = JobSettings(
        mode="mini",
        max_images=50,
        per_class=3,
        seed=7,
        pca_variance=None,
        pca_k=12,
        pca_solver="mllib",
        weights="s3://b/w.weights.h5",
        image_size=160,
        batch_size=32,
        task_slots=80,
    )
    argv = build_job_arguments(
        settings, input_uri="s3://b/in", output_uri="s3://b/out", run_id="run-1"
    )
    args = cli.parse_args(argv)
    assert (args.input, args.output, args.run_id) == ("s3://b/in", "s3://b/out", "run-1")
    assert (args.mode, args.max_images, args.per_class, args.seed) == ("mini", 50, 3, 7)
    assert (args.pca_k, args.pca_variance, args.pca_solver) == (12, None, "mllib")
    assert (args.weights, args.image_size, args.batch_size) == ("s3://b/w.weights.h5", 160, 32)
    assert args.task_slots == 80
    # Without slots (the local DAG), the job falls back to defaultParallelism.
    local = build_job_arguments(JobSettings(), input_uri="a", output_uri="b", run_id="r")
    assert "--task-slots" not in local
    assert cli.parse_args(local).task_slots is None
    assert cli.parse_args(local).feature_cache is None  # no cache: every image featurised
    cached = build_job_arguments(
        JobSettings(), input_uri="a", output_uri="b", run_id="r", feature_cache_uri="s3://b/c/"
    )
    assert cli.parse_args(cached).feature_cache == "s3://b/c/"


def test_partitions_are_a_whole_multiple_of_the_slots():
    assert cli.plan_partitions(20, 80) == 80  # a small run still uses every slot
    assert cli.plan_partitions(90_000, 80) == 80  # 1,125 images per task: one wave
    assert cli.plan_partitions(90_000, 8) == 48  # at most ~2,000 images per task
    assert cli.plan_partitions(0, 2) == 2


def test_pca_solvers_are_the_same_everywhere():
    from include.params.job_args import PCA_SOLVERS
    from spark_jobs import pca

    choices = next(a.choices for a in cli.build_parser()._actions if a.dest == "pca_solver")
    assert tuple(choices) == PCA_SOLVERS == pca.SOLVERS


def test_variance_is_the_default_pca_target():
    args = cli.parse_args(["--input", "i", "--output", "o", "--run-id", "r"])
    assert (args.pca_variance, args.pca_k, args.mode, args.weights, args.pca_solver) == (
        0.95,
        None,
        "mini",
        "imagenet",
        "gram",
    )


@pytest.mark.parametrize(
    "extra",
    [
        ["--pca-k", "3", "--pca-variance", "0.9"],
        ["--pca-variance", "1.5"],
        ["--pca-k", "0"],
        ["--mode", "full", "--max-images", "10"],
        ["--image-size", "16"],
        ["--mode", "huge"],
        ["--pca-solver", "svd"],
    ],
)
def test_bad_arguments_exit_with_code_2(extra, capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.parse_args(["--input", "i", "--output", "o", "--run-id", "r", *extra])
    assert excinfo.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("run_id", ["", "a/b", ".."])
def test_run_id_must_be_a_plain_name(run_id):
    with pytest.raises(SystemExit):
        cli.parse_args(["--input", "i", "--output", "o", "--run-id", run_id])
