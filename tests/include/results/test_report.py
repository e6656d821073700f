"""The run report: plots, banners and tables from a job's outputs (made here, no Spark)."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.results.report import ReportError, build_report, load_pca_points, main, weights_banner

LABELS = ("Apple Red 1", "Banana", "Kiwi", "Lemon")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(run_id: str, *, k: int, meaningful: bool, bad: list[dict] | None = None) -> dict:
    explained = [0.41, 0.22, 0.12, 0.08, 0.05, 0.04, 0.03, 0.02]
    cumulative = [round(sum(explained[: i + 1]), 6) for i in range(len(explained))]
    by_split_label = {
        "Training": dict.fromkeys(LABELS, 6),
        "Test": dict.fromkeys(LABELS, 2),
    }
    bad = bad if bad is not None else [{"path": "Training/Kiwi/broken.jpg", "reason": "OSError"}]
    return {
        "run_id": run_id,
        "mode": "mini",
        "input": "/data/fruits",
        "output": "/data/results",
        "started_at": "2026-01-01T10:00:00+00:00",
        "finished_at": "2026-01-01T10:01:00+00:00",
        "weights": {
            "source": "imagenet" if meaningful else "none",
            "meaningful": meaningful,
            "note": "" if meaningful else "random init",
        },
        "counts": {
            "total_files": 32 + len(bad),
            "valid_images": 32,
            "bad_files": len(bad),
            "by_label": dict.fromkeys(LABELS, 8),
            "by_split": {"Training": 24, "Test": 8},
            "by_split_label": by_split_label,
        },
        "bad_files": bad,
        "pca": {
            "k": k,
            "target_variance": None if k == 1 else 0.9,
            "fixed_k": 1 if k == 1 else None,
            "explained_variance": explained,
            "cumulative_variance": cumulative,
            "variance_at_k": cumulative[k - 1],
            "solver": "mllib",
        },
        "timings_s": {"read": 1.5, "featurize": 20.25, "pca": 3.0, "write": 1.0, "total": 26.0},
        "throughput": {"images_per_s_featurize": 1.6, "images_per_s_end_to_end": 1.2, "cores": 2},
        "spark": {"master": "local[*]", "version": "3.5.6", "default_parallelism": 2},
        "versions": {"python": "3.11", "pyspark": "3.5.6"},
        "image_size": 224,
        "batch_size": 64,
        "feature_dim": 1280,
    }


def _write_pca(run_dir: Path, k: int, n_per_label: int = 8) -> None:
    """A Spark-like pca/ folder: part files, a _SUCCESS marker and a .crc file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    rows = {"path": [], "split": [], "label": [], "pca": []}
    for i, label in enumerate(LABELS):
        for j in range(n_per_label):
            rows["path"].append(f"Training/{label}/{j}_100.jpg")
            rows["split"].append("Training" if j < 6 else "Test")
            rows["label"].append(label)
            rows["pca"].append([i * 5 + rng.gauss(0, 1) for _ in range(k)])
    table = pa.table(
        rows,
        schema=pa.schema(
            [
                ("path", pa.string()),
                ("split", pa.string()),
                ("label", pa.string()),
                ("pca", pa.list_(pa.float64())),
            ]
        ),
    )
    pca_dir = run_dir / "pca"
    pca_dir.mkdir(parents=True)
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), pca_dir / "part-00000.snappy.parquet")
    pq.write_table(table.slice(half), pca_dir / "part-00001.snappy.parquet")
    (pca_dir / "_SUCCESS").write_bytes(b"")
    (pca_dir / ".part-00000.snappy.parquet.crc").write_bytes(b"crc")


def _run_dir(
    tmp_path: Path,
    *,
    k: int = 3,
    meaningful: bool = True,
    pca: bool = True,
    bad: list[dict] | None = None,
) -> Path:
    run_dir = tmp_path / "results" / "run_1"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(
        json.dumps(_metrics("run_1", k=k, meaningful=meaningful, bad=bad))
    )
    if pca:
        _write_pca(run_dir, k)
    (run_dir / "_SUCCESS").write_bytes(b"")
    return run_dir


def _embedded_pngs(html: str) -> int:
    return len(re.findall(r'src="data:image/png;base64,', html))


def test_full_report_has_every_plot_embedded_and_on_disk(tmp_path):
    run_dir = _run_dir(tmp_path, k=3)

    report = build_report(run_dir)

    assert report == run_dir / "report" / "report.html"
    html = report.read_text()
    assert _embedded_pngs(html) == 4
    for name in ("explained_variance", "pca_scatter", "counts_per_label", "timings"):
        png = run_dir / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, name
    assert "k = 3" in html
    assert "solver mllib" in html
    assert "0.7500" in html
    assert "Training/Kiwi/broken.jpg" in html
    assert "OSError" in html
    assert "Skipped or unreadable files (1)" in html
    assert "20.2" in html or "20.3" in html  # featurize seconds in the timings
    assert "1.6" in html  # images/s
    assert "WARNING" not in html
    assert "EMR cluster cost" not in html  # a local run has no cluster
    assert not list((run_dir / "report").glob("*.tmp"))


def test_random_weights_get_a_loud_banner(tmp_path):
    run_dir = _run_dir(tmp_path, meaningful=False)

    html = build_report(run_dir).read_text()

    assert 'class="banner warn"' in html
    assert "NOT meaningful" in html
    assert "&#x27;none&#x27;" in html


def test_weights_banner_text():
    ok, text = weights_banner({"source": "imagenet", "meaningful": True, "note": ""})
    assert ok
    assert "imagenet" in text
    assert "WARNING" not in text
    bad, text = weights_banner({"source": "none", "meaningful": False})
    assert not bad
    assert text.startswith("WARNING")


def test_k_equal_one_still_plots_a_one_dimensional_scatter(tmp_path):
    run_dir = _run_dir(tmp_path, k=1, bad=[])

    points = load_pca_points(run_dir)
    html = build_report(run_dir).read_text()

    assert len(points["pc1"]) == 32
    assert points["pc2"] == []
    assert (run_dir / "report" / "pca_scatter.png").is_file()
    assert "k = 1" in html
    assert "None: every file was a readable image." in html


def test_missing_pca_folder_gives_a_note_not_a_crash(tmp_path):
    run_dir = _run_dir(tmp_path, pca=False)

    html = build_report(run_dir).read_text()

    assert not (run_dir / "report" / "pca_scatter.png").exists()
    assert 'No data for "PCA scatter"' in html
    assert _embedded_pngs(html) == 3


def test_pca_points_are_read_from_every_part_file_and_subsampled(tmp_path):
    run_dir = _run_dir(tmp_path, k=2)

    everything = load_pca_points(run_dir)
    some = load_pca_points(run_dir, max_points=10)

    assert len(everything["pc1"]) == len(everything["pc2"]) == 32
    assert set(everything["label"]) == set(LABELS)
    assert 8 <= len(some["pc1"]) <= 10


def test_rerun_removes_stale_plots(tmp_path):
    run_dir = _run_dir(tmp_path)
    build_report(run_dir)
    stale = run_dir / "report" / "old_plot.png"
    stale.write_bytes(PNG_MAGIC)

    build_report(run_dir)

    assert not stale.exists()


def test_missing_metrics_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "results" / "never_ran"
    run_dir.mkdir(parents=True)

    with pytest.raises(ReportError, match=r"no metrics\.json"):
        build_report(run_dir)
    assert not (run_dir / "report" / "report.html").exists()


def test_corrupt_metrics_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{not json")

    with pytest.raises(ReportError, match="not valid JSON"):
        build_report(run_dir)


def _cluster_json(
    path: Path, *, instance_type: str = "m5.xlarge", running_captured_after_h: float | None = None
) -> Path:
    created = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    ended = created + timedelta(hours=2)
    timeline = {"CreationDateTime": str(created), "EndDateTime": str(ended)}
    extra = {}
    if running_captured_after_h is not None:  # described while still running (no end time)
        timeline = {"CreationDateTime": str(created)}
        extra = {"CapturedAt": (created + timedelta(hours=running_captured_after_h)).isoformat()}
    saved = {
        "Cluster": {
            "Id": "j-TEST123",
            "Name": "fruits",
            "Status": {"State": "TERMINATED", "Timeline": timeline},
            "NormalizedInstanceHours": 16,
        },
        "InstanceGroups": [
            {
                "Id": "ig-1",
                "InstanceGroupType": "MASTER",
                "Market": "ON_DEMAND",
                "InstanceType": instance_type,
                "RequestedInstanceCount": 1,
                "RunningInstanceCount": 0,
                "Status": {"Timeline": timeline},
            },
            {
                "Id": "ig-2",
                "InstanceGroupType": "CORE",
                "Market": "ON_DEMAND",
                "InstanceType": instance_type,
                "RequestedInstanceCount": 2,
                "RunningInstanceCount": 0,
                "Status": {"Timeline": timeline},
            },
        ],
        **extra,
    }
    path.write_text(json.dumps(saved, default=str))
    return path


def test_emr_run_reports_instance_hours_and_cost(tmp_path):
    run_dir = _run_dir(tmp_path)
    cluster = _cluster_json(tmp_path / "cluster.json")

    html = build_report(run_dir, cluster_json=cluster).read_text()

    # 3 instances x 2 h = 6 instance-hours of m5.xlarge at (0.214 + 0.048) $/h = $1.57
    assert "EMR cluster cost" in html
    assert "j-TEST123" in html
    assert "6.000" in html
    assert "$1.57" in html


def test_running_cluster_is_costed_up_to_its_capture_not_to_report_time(tmp_path):
    run_dir = _run_dir(tmp_path)
    cluster = _cluster_json(tmp_path / "cluster.json", running_captured_after_h=1.0)

    html = build_report(run_dir, cluster_json=cluster).read_text()

    # 3 instances x 1 h (captured 1 h after creation, in 2026-01, long before today)
    assert "3.000" in html
    assert "$0.79" in html


def test_cluster_json_inside_the_run_folder_is_found(tmp_path):
    run_dir = _run_dir(tmp_path)
    _cluster_json(run_dir / "cluster.json")

    assert "j-TEST123" in build_report(run_dir).read_text()


def test_unpriced_instance_type_says_unknown_not_a_partial_sum(tmp_path):
    run_dir = _run_dir(tmp_path)
    cluster = _cluster_json(tmp_path / "cluster.json", instance_type="x9.mega")

    html = build_report(run_dir, cluster_json=cluster).read_text()

    assert "unknown (no price for x9.mega)" in html


def test_bad_cluster_json_still_writes_the_report(tmp_path):
    run_dir = _run_dir(tmp_path)
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps({"InstanceGroups": []}))

    html = build_report(run_dir, cluster_json=cluster).read_text()

    assert "cost estimate unavailable" in html
    assert "no &#x27;Cluster&#x27; object" in html
    assert _embedded_pngs(html) == 4


def test_many_labels_drop_the_legend_and_cap_the_bar_chart(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = _metrics("many", k=2, meaningful=True, bad=[])
    labels = [f"Fruit {i:03d}" for i in range(120)]
    metrics["counts"]["by_split_label"] = {"Training": {lab: 5 for lab in labels}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    html = build_report(run_dir).read_text()

    from PIL import Image

    assert "Table: 120 labels" in html  # every label is still in the HTML table
    with Image.open(run_dir / "report" / "counts_per_label.png") as png:
        # 40 bars at 110 dpi: ~1.4k px tall; all 120 bars would be ~3.8k px.
        assert png.height < 1600


def test_cli_prints_the_report_path_and_fails_cleanly(tmp_path, capsys):
    run_dir = _run_dir(tmp_path)

    assert main([str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report" / "report.html")

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nothing")])
    assert exc.value.code == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_hundreds_of_components_with_a_large_k(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = _metrics("wide", k=3, meaningful=True, bad=[])
    explained = [0.5 / 1280 + (0.5 if i == 0 else 0.0) for i in range(1280)]
    cumulative = [sum(explained[: i + 1]) for i in range(1280)]
    metrics["pca"].update(
        k=600, explained_variance=explained, cumulative_variance=cumulative, variance_at_k=None
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    html = build_report(run_dir).read_text()

    assert "k = 600" in html
    assert (run_dir / "report" / "explained_variance.png").read_bytes()[:8] == PNG_MAGIC


def test_pre_run_estimate_is_shown_next_to_the_actual_instance_hours(tmp_path):
    from include.costs.budget import estimate_run_cost, write_estimate

    run_dir = _run_dir(tmp_path)
    _cluster_json(run_dir / "cluster.json")
    estimate = estimate_run_cost(
        images=8000, runtime="keras", instance_type="m5.xlarge", core_nodes=2, poke_interval_s=30
    )
    write_estimate(run_dir, {**estimate.to_dict(), "max_cost_usd": 5.0})

    html = build_report(run_dir).read_text()

    section = html.split("<h2>Estimated vs actual instance-hours</h2>")[1].split("<h2>")[0]
    assert "estimated before the cluster (budget guard)" in section
    assert f"{estimate.instance_hours:.3f}" in section  # 0.558
    assert "actual (cluster timeline)" in section
    assert "6.000" in section  # 3 instances x 2 h
    assert "8000 images, keras at 25.0 images/s per vCPU" in section


def test_no_estimate_no_section_and_a_damaged_one_is_ignored(tmp_path):
    run_dir = _run_dir(tmp_path)
    assert "Estimated vs actual" not in build_report(run_dir).read_text()
    (run_dir / "cost_estimate.json").write_text("{broken")
    assert "Estimated vs actual" not in build_report(run_dir).read_text()


def test_features_computed_and_reused_are_reported(tmp_path):
    run_dir = _run_dir(tmp_path, k=3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["counts"].update(featurized=3, reused=61)
    metrics["feature_cache"] = {"uri": "s3://b/p/feature-cache", "hits": 61, "misses": 4}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    html = build_report(run_dir).read_text()

    assert (
        "computed now / reused from the feature cache</td><td>3 / 61 (s3://b/p/feature-cache)"
        in html
    )


def test_header_says_a_mini_run_is_a_sample_of_the_dataset(tmp_path):
    run_dir = _run_dir(tmp_path, k=3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["counts"]["dataset_images"] = 10_664
    metrics["sample"] = {"seed": 7, "max_images": 33, "per_class": None}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    html = build_report(run_dir).read_text()

    assert "<td>mode</td><td>mini: 33 of 10,664 images, a seeded sample (seed 7, cap 33)" in html


def test_header_of_a_full_run_and_of_older_metrics(tmp_path):
    from include.results.report import selection_text

    run_dir = _run_dir(tmp_path, k=3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["mode"] = "full"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert "<td>mode</td><td>full: every image (33)</td>" in build_report(run_dir).read_text()
    # Metrics of a run made before dataset_images existed: what was read, without a total.
    assert selection_text({"mode": "mini", "counts": {}}) == "mini"
    old = {"mode": "mini", "sample": {"seed": 3}, "counts": {"total_files": 20}}
    assert selection_text(old) == "mini: 20 images, a seeded sample (seed 3)"


def test_a_single_label_is_not_called_labels(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = _metrics("one", k=2, meaningful=True, bad=[])
    metrics["counts"]["by_split_label"] = {"Training": {"Kiwi": 5}, "Test": {"Kiwi": 2}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    html = build_report(run_dir).read_text()

    assert "Table: 1 label<" in html
    assert "1 labels" not in html


def _separability(**overrides) -> dict:
    section = {
        "k": 3,
        "accuracy_at_k": 0.8125,
        "feature_dim": 1280,
        "accuracy_full": 0.9375,
        "ks": [2, 3],
        "accuracy_by_k": [0.5625, 0.8125],
        "chance": 0.25,
        "train_rows": 24,
        "test_rows": 8,
        "test_rows_unseen_label": 0,
        "labels": sorted(LABELS),
        "classifier": {
            "family": "multinomial",
            "max_iter": 30,
            "reg_param": 0.001,
            "iterations_by_k": [9, 14],
            "iterations_full": 30,
        },
        "seconds": 4.25,
    }
    return {**section, **overrides}


def _with_separability(run_dir: Path, section: dict | None) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if section is None:
        metrics.pop("separability", None)
    else:
        metrics["separability"] = section
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def _section(html: str) -> str:
    return html.split("<h2>Class separability (Test accuracy)</h2>")[1].split("<h2>")[0]


def test_separability_section_has_the_accuracies_and_the_curve_on_the_variance_plot(tmp_path):
    plain = build_report(_run_dir(tmp_path / "a", k=3))
    run_dir = _with_separability(_run_dir(tmp_path / "b", k=3), _separability())

    html = build_report(run_dir).read_text()

    section = _section(html)
    assert "<td>first 2 components</td><td>56.2%</td>" in section
    assert "<td>first 3 components (the PCA&#x27;s k)</td><td>81.2%</td>" in section
    assert "<td>all 1280 features</td><td>93.8%</td>" in section
    assert "<td>chance (always the most frequent Training label)</td><td>25.0%</td>" in section
    assert "24 Training images of 4 labels" in section
    assert "8 Test images" in section
    assert "at most 30 L-BFGS iterations" in section
    assert "4.2 s" in section or "4.3 s" in section
    assert "meaningless" not in section  # ImageNet weights: no warning
    assert "have a label with no Training image" not in section
    assert _embedded_pngs(html) == 4  # the curve is drawn on the explained-variance figure
    with_curve = (run_dir / "report" / "explained_variance.png").read_bytes()
    assert with_curve[:8] == PNG_MAGIC
    assert with_curve != (plain.parent / "explained_variance.png").read_bytes()


def test_separability_on_random_weights_is_flagged_meaningless_next_to_the_figures(tmp_path):
    run_dir = _with_separability(_run_dir(tmp_path, meaningful=False), _separability())

    section = _section(build_report(run_dir).read_text())

    assert 'class="banner warn"' in section
    assert "these accuracies are meaningless" in section
    assert section.index("meaningless") < section.index("<table>")


def test_absent_separability_says_why(tmp_path):
    why = "no Test split (the data's splits: Training): Test accuracy needs valid images"
    run_dir = _with_separability(_run_dir(tmp_path, meaningful=False), {"absent": why})

    section = _section(build_report(run_dir).read_text())

    assert "Absent: no Test split (the data&#x27;s splits: Training)" in section
    assert "<table>" not in section
    assert "meaningless" not in section  # no figure, nothing to warn about


def test_metrics_from_before_separability_say_it_was_not_measured(tmp_path):
    run_dir = _with_separability(_run_dir(tmp_path), None)

    section = _section(build_report(run_dir).read_text())

    assert "Not measured: this metrics.json has no separability section" in section


def test_a_sampled_training_set_is_said_so(tmp_path):
    sampled = _separability(train_rows=13_050, train_rows_available=67_692, max_train_per_label=100)
    run_dir = _with_separability(_run_dir(tmp_path), sampled)

    section = _section(build_report(run_dir).read_text())

    assert "13050 Training images (a seeded sample of about 100 per label, of 67692)" in section


def test_test_labels_without_training_images_are_said_to_count_as_wrong(tmp_path):
    run_dir = _with_separability(_run_dir(tmp_path), _separability(test_rows_unseen_label=3))

    section = _section(build_report(run_dir).read_text())

    assert "3 Test images have a label with no Training image: they count as wrong." in section
