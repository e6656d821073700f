"""The results report of one run: HTML with the plots embedded, plus the PNGs beside it.

Reads what the Spark job wrote under ``<run_dir>/`` (``metrics.json``, the ``pca/``
parquet) and, for EMR runs, the ``cluster.json`` saved by the download task, and writes
``<run_dir>/report/``:

- ``report.html``: self-contained (PNGs embedded as base64), opens from disk;
- ``explained_variance.png``: per-component and cumulative explained variance, chosen k,
  and the Test accuracy of a classifier on the first components (class separability);
- ``pca_scatter.png``: the images on the first two principal components, one colour per label;
- ``counts_per_label.png``: valid images per label and split;
- ``timings.png``: seconds per stage of the job.

matplotlib runs headless (Agg backend), imported inside :func:`build_report` so that
importing this module (a DAG file does) stays cheap.

    python -m include.results.report data/results/<dag_id>/<run_id>
"""

from __future__ import annotations

import argparse
import base64
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.costs.cluster import cluster_cost_summary
from include.results import plots as report_plots
from include.results.html import esc, fmt, plural, table
from include.results.separability import separability_section
from include.results.serverless_cost import serverless_cost_section

# Enough points to see the clusters; more only slows the PNG down.
MAX_SCATTER_POINTS = 20_000

REPORT_DIRNAME = "report"


class ReportError(RuntimeError):
    """The run folder does not contain what a report needs (e.g. no metrics.json)."""


def load_metrics(run_dir: Path) -> dict[str, Any]:
    """The job's ``metrics.json`` of ``run_dir``, with a clear error when it is missing or bad."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise ReportError(
            f"{path} not found: the job did not finish for this run (no metrics.json), "
            "so there is nothing to report"
        )
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(metrics, dict):
        raise ReportError(f"{path} must hold a JSON object, got {type(metrics).__name__}")
    return metrics


def load_pca_points(run_dir: Path, *, max_points: int = MAX_SCATTER_POINTS) -> dict[str, list]:
    """Labels, splits and the first two PCA coordinates from ``<run_dir>/pca/`` (parquet).

    Returns ``{"label": [...], "split": [...], "pc1": [...], "pc2": [... or empty]}``; empty
    lists when the folder is missing. ``pc2`` is empty when k == 1. At most ``max_points``
    rows, taken evenly (deterministic), so that huge runs still plot quickly.
    """
    pca_dir = run_dir / "pca"
    empty: dict[str, list] = {"label": [], "split": [], "pc1": [], "pc2": []}
    if not pca_dir.is_dir():
        return empty
    import pyarrow.dataset as ds  # noqa: PLC0415 (lazy: loads pandas and pyarrow)

    # Spark's _SUCCESS and .crc files are skipped by pyarrow's default ignore prefixes.
    table = ds.dataset(str(pca_dir), format="parquet").to_table(columns=["label", "split", "pca"])
    if table.num_rows == 0:
        return empty
    step = max(1, math.ceil(table.num_rows / max_points))
    labels = table.column("label").to_pylist()[::step]
    splits = table.column("split").to_pylist()[::step]
    vectors = table.column("pca").to_pylist()[::step]
    pc1 = [float(v[0]) if v else math.nan for v in vectors]
    has_pc2 = all(v is not None and len(v) >= 2 for v in vectors)
    pc2 = [float(v[1]) for v in vectors] if has_pc2 else []
    return {"label": labels, "split": splits, "pc1": pc1, "pc2": pc2}


def load_cluster_cost(cluster_json: Path) -> dict[str, Any]:
    """Instance-hours and estimated cost of the EMR cluster described in ``cluster_json``.

    The file holds ``describe_cluster()["Cluster"]`` under ``"Cluster"``,
    ``list_instance_groups()["InstanceGroups"]`` under ``"InstanceGroups"`` and, optionally,
    the ISO time it was captured under ``"CapturedAt"``.
    """

    try:
        saved = json.loads(cluster_json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read the cluster description {cluster_json}: {exc}") from exc
    cluster = saved.get("Cluster") or saved.get("cluster")
    groups = saved.get("InstanceGroups") or saved.get("instance_groups") or []
    if not isinstance(cluster, dict):
        raise ReportError(f"{cluster_json} has no 'Cluster' object (describe_cluster output)")
    # A cluster still running when it was described (the download runs while it is being
    # terminated) is costed up to that moment, not up to whenever the report is rebuilt.
    return cluster_cost_summary(cluster, groups, now=saved.get("CapturedAt"))


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.92em} th{background:#f3f3f3}
.banner{padding:1em;border-radius:6px;font-weight:bold;margin:1em 0}
.warn{background:#fde0dc;border:2px solid #d62728;color:#7f0000}
.ok{background:#e5f5e0;border:1px solid #74c476}
img{max-width:100%} .muted{color:#666;font-size:.9em}
"""


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return f'<p class="muted">No data for "{esc(alt)}".</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></p>'


def weights_banner(weights: Mapping[str, Any]) -> tuple[bool, str]:
    """(meaningful, one-line text) describing the weights the features were computed with."""
    source = weights.get("source", "unknown")
    meaningful = bool(weights.get("meaningful", False))
    note = weights.get("note") or ""
    if meaningful:
        return True, f"Features computed with MobileNetV2 weights: {source}. {note}".strip()
    return False, (
        f"WARNING: features computed with weights '{source}' (random initialisation): they are "
        "NOT meaningful image features, and the PCA below only shows the pipeline works. "
        "Rerun with ImageNet weights (internet access or --weights FILE) for real results. "
        f"{note}"
    ).strip()


def selection_text(metrics: Mapping[str, Any]) -> str:
    """Which images the run read: "mini: 200 of 10,664 images, a seeded sample (seed 42)"
    or "full: every image (10,664)". A sampled run never reads as a full one."""
    counts = metrics.get("counts") or {}
    read = counts.get("total_files")
    total = counts.get("dataset_images", read)
    if read is None:
        return str(metrics.get("mode", "n/a"))
    if metrics.get("mode") != "mini":
        return f"full: every image ({total:,})"
    sample = metrics.get("sample") or {}
    caps = ", ".join(
        f"{name} {sample[key]}"
        for key, name in (("max_images", "cap"), ("per_class", "per label"))
        if sample.get(key)
    )
    if "dataset_images" not in counts:  # metrics of a run before the total was recorded
        return f"mini: {read:,} images, a seeded sample (seed {sample.get('seed', 'n/a')})"
    if read >= total:
        return (
            f"mini: every image ({read:,}): the sample's limits ({caps or 'none'}) are not reached"
        )
    return (
        f"mini: {read:,} of {total:,} images, a seeded sample "
        f"(seed {sample.get('seed', 'n/a')}{', ' + caps if caps else ''})"
    )


def load_estimate(run_dir: Path) -> dict[str, Any] | None:
    """The budget guard's pre-run estimate (``cost_estimate.json``), or None (none, damaged)."""
    path = Path(run_dir) / "cost_estimate.json"
    if not path.is_file():
        return None
    try:
        estimate = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return estimate if isinstance(estimate, dict) else None


def _estimate_rows(estimate: Mapping[str, Any], cost: Mapping[str, Any] | None) -> list[tuple]:
    rows = [
        (
            "estimated before the cluster (budget guard)",
            fmt(estimate.get("instance_hours"), 3),
            fmt(estimate.get("estimated_usd"), 2),
            f"{estimate.get('images', 'n/a')} images, {estimate.get('runtime', 'n/a')} at "
            f"{estimate.get('images_per_s_per_vcpu', 'n/a')} images/s per vCPU; "
            f"budget {fmt(estimate.get('max_cost_usd'), 2)} USD",
        )
    ]
    if cost is not None:
        rows.append(
            (
                "actual (cluster timeline)",
                fmt(cost.get("instance_hours"), 3),
                fmt(cost.get("estimated_usd"), 2),
                f"cluster {cost.get('cluster_id')}",
            )
        )
    return rows


def _render_html(
    metrics: Mapping[str, Any],
    plots: Mapping[str, Path | None],
    cost: Mapping[str, Any] | None,
    cost_error: str | None,
    estimate: Mapping[str, Any] | None = None,
    extra_html: str | None = None,
) -> str:
    counts = metrics.get("counts") or {}
    pca = metrics.get("pca") or {}
    timings = metrics.get("timings_s") or {}
    throughput = metrics.get("throughput") or {}
    meaningful, weights_text = weights_banner(metrics.get("weights") or {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Fruits features report: {esc(metrics.get('run_id', ''))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Fruits features report: run {esc(metrics.get('run_id', 'unknown'))}</h1>",
        f'<div class="banner {"ok" if meaningful else "warn"}">{esc(weights_text)}</div>',
        table(
            ["", ""],
            [
                ("mode", selection_text(metrics)),
                ("input", metrics.get("input", "n/a")),
                ("output", metrics.get("output", "n/a")),
                (
                    "started / finished (UTC)",
                    f"{metrics.get('started_at', 'n/a')} / {metrics.get('finished_at', 'n/a')}",
                ),
                (
                    "images: files seen / valid / bad",
                    f"{counts.get('total_files', 'n/a')} / {counts.get('valid_images', 'n/a')} / "
                    f"{counts.get('bad_files', 'n/a')}",
                ),
                (
                    "features: computed now / reused from the feature cache",
                    f"{counts.get('featurized', 'n/a')} / {counts.get('reused', 0)} "
                    f"({(metrics.get('feature_cache') or {}).get('uri') or 'no cache'})",
                ),
                (
                    "PCA",
                    f"k = {pca.get('k', 'n/a')}, variance kept = "
                    f"{fmt(pca.get('variance_at_k'), 4)}"
                    + (
                        f", target = {pca['target_variance']}"
                        if pca.get("target_variance") is not None
                        else ""
                    )
                    + (f", fixed k = {pca['fixed_k']}" if pca.get("fixed_k") else "")
                    + (f", solver {pca['solver']}" if pca.get("solver") else ""),
                ),
                (
                    "image size / batch size",
                    f"{metrics.get('image_size', 'n/a')} / {metrics.get('batch_size', 'n/a')}",
                ),
                (
                    "Spark",
                    f"{(metrics.get('spark') or {}).get('master', 'n/a')}, "
                    f"version {(metrics.get('spark') or {}).get('version', 'n/a')}",
                ),
            ],
        ).replace("<tr><th></th><th></th></tr>", ""),
        "<h2>Explained variance</h2>",
        _img(plots.get("explained_variance"), "explained variance"),
        separability_section(metrics.get("separability"), meaningful=meaningful),
        "<h2>Images on the first two principal components</h2>",
        _img(plots.get("pca_scatter"), "PCA scatter"),
        "<h2>Images per label</h2>",
        _img(plots.get("counts"), "images per label"),
    ]
    by_split_label = counts.get("by_split_label") or {}
    if by_split_label:
        splits = sorted(by_split_label)
        labels = sorted({lab for per in by_split_label.values() for lab in per})
        rows = [[lab, *(by_split_label[s].get(lab, 0) for s in splits)] for lab in labels]
        parts.append(
            f"<details><summary>Table: {plural(len(labels), 'label')}</summary>"
            f"{table(['label', *splits], rows)}</details>"
        )
    bad = metrics.get("bad_files") or []
    parts.append(f"<h2>Skipped or unreadable files ({len(bad)})</h2>")
    if bad:
        parts.append(table(["path", "reason"], [(b.get("path"), b.get("reason")) for b in bad]))
    else:
        parts.append("<p>None: every file was a readable image.</p>")
    parts += ["<h2>Stage timings and throughput</h2>", _img(plots.get("timings"), "timings")]
    stage_rows = [(name, fmt(float(v), 1)) for name, v in timings.items() if v is not None]
    if stage_rows:
        parts.append(table(["stage", "seconds"], stage_rows))
    parts.append(
        table(
            ["images/s (featurize)", "images/s (end to end)", "cores", "total seconds"],
            [
                (
                    fmt(throughput.get("images_per_s_featurize"), 1),
                    fmt(throughput.get("images_per_s_end_to_end"), 1),
                    throughput.get("cores", "n/a"),
                    fmt(timings.get("total"), 1),
                )
            ],
        )
    )
    if cost is not None or cost_error is not None:
        parts.append("<h2>EMR cluster cost (estimate)</h2>")
        if cost_error is not None:
            parts.append(f'<div class="banner warn">{esc(cost_error)}</div>')
        else:
            usd = cost.get("estimated_usd")
            usd_text = (
                f"${usd:.2f}"
                if usd is not None
                else f"unknown (no price for {', '.join(cost.get('unpriced_instance_types', []))})"
            )
            parts.append(
                table(
                    ["cluster", "state", "runtime hours", "instance-hours", "estimated USD"],
                    [
                        (
                            cost.get("cluster_id"),
                            cost.get("state"),
                            fmt(cost.get("runtime_hours"), 3),
                            fmt(cost.get("instance_hours"), 3),
                            usd_text,
                        )
                    ],
                )
            )
            groups = cost.get("instance_groups") or []
            if groups:
                parts.append(
                    table(
                        ["group", "market", "instance type", "instances", "instance-hours"],
                        [
                            (
                                g.get("role"),
                                g.get("market"),
                                g.get("instance_type"),
                                g.get("instances"),
                                fmt(g.get("instance_hours"), 3),
                            )
                            for g in groups
                        ],
                    )
                )
            parts.append(f'<p class="muted">{esc(cost.get("price_basis", ""))}</p>')
    if extra_html:
        parts.append(extra_html)
    if estimate is not None:
        parts.append("<h2>Estimated vs actual instance-hours</h2>")
        parts.append(table(["", "instance-hours", "USD", "basis"], _estimate_rows(estimate, cost)))
    versions = metrics.get("versions") or {}
    if versions:
        parts.append("<h2>Versions</h2>")
        parts.append(table(["package", "version"], sorted(versions.items())))
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- entry points


def build_report(run_dir: Path, *, cluster_json: Path | None = None) -> Path:
    """Write ``<run_dir>/report/report.html`` and its PNGs; return the HTML's path.

    ``run_dir`` is one run's output folder (``metrics.json``, ``pca/``). ``cluster_json``
    (EMR runs) adds instance-hours and an estimated cost; when it is None, a
    ``cluster.json`` inside ``run_dir`` is used if present; a ``cost_estimate.json`` there
    (the budget guard's pre-run estimate) is shown next to the actual instance-hours.
    Optional parts that are missing
    (no ``pca/``, k == 1, no bad files, no timings) give a note instead of a plot. Raises
    :class:`ReportError` when ``metrics.json`` is missing or not valid JSON.
    """
    import matplotlib  # noqa: PLC0415 (lazy: loads matplotlib and PIL)

    matplotlib.use("Agg", force=True)  # headless: workers and CI have no display
    import matplotlib.pyplot as plt  # noqa: PLC0415 (lazy: loads matplotlib and PIL)

    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    if cluster_json is None and (run_dir / "cluster.json").is_file():
        cluster_json = run_dir / "cluster.json"
    cost: dict[str, Any] | None = None
    cost_error: str | None = None
    if cluster_json is not None:
        try:
            cost = load_cluster_cost(Path(cluster_json))
        except (ReportError, ValueError, TypeError) as exc:
            # The cost is a side note: the report of a finished run must still be written.
            cost_error = f"cost estimate unavailable: {exc}"

    out = run_dir / REPORT_DIRNAME
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.png"):  # a rerun must not keep a plot that no longer applies
        stale.unlink()
    plots = {
        "explained_variance": report_plots.plot_explained_variance(
            plt, metrics.get("pca") or {}, out, metrics.get("separability")
        ),
        "pca_scatter": report_plots.plot_scatter(plt, load_pca_points(run_dir), out),
        "counts": report_plots.plot_counts(plt, metrics.get("counts") or {}, out),
        "timings": report_plots.plot_timings(plt, metrics.get("timings_s") or {}, out),
    }
    report = out / "report.html"
    tmp = report.with_suffix(".html.tmp")

    estimate = load_estimate(run_dir)
    serverless = serverless_cost_section(run_dir, estimate)  # EMR Serverless runs only
    if serverless is not None:
        estimate = None  # shown in the Serverless section, in its own units
    html = _render_html(metrics, plots, cost, cost_error, estimate, serverless)
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(report)  # never leave a half-written report behind
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the HTML report of one run's results.")
    parser.add_argument("run_dir", type=Path, help="a run's output folder (with metrics.json)")
    parser.add_argument("--cluster-json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        path = build_report(args.run_dir, cluster_json=args.cluster_json)
    except ReportError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
