"""The report's plots (matplotlib, Agg backend): each returns the PNG it wrote, or None.

``plt`` is ``matplotlib.pyplot``, imported by :func:`include.results.report.build_report` so that
importing either module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.results.html import plural
from include.results.separability import measured

# Past this many labels a legend (and a per-label bar chart) is unreadable: the scatter keeps
# the colours but drops the legend; the bar chart shows the most frequent labels only.
MAX_LEGEND_LABELS = 20
MAX_BAR_LABELS = 40


def plot_explained_variance(
    plt: Any,
    pca: Mapping[str, Any],
    out: Path,
    separability: Mapping[str, Any] | None = None,
) -> Path | None:
    """The explained-variance curve and, when ``separability`` (``metrics.json``'s section)
    has accuracies, the Test accuracy at each k on the same axis (both are fractions)."""
    per_component = [float(v) for v in pca.get("explained_variance") or []]
    if not per_component:
        return None
    cumulative = [float(v) for v in pca.get("cumulative_variance") or []]
    if len(cumulative) != len(per_component):
        cumulative = [sum(per_component[: i + 1]) for i in range(len(per_component))]
    k = int(pca.get("k") or 0)
    fitted = len(per_component)
    # Up to 1280 fitted components: show the ones around k, where the curve still moves.
    shown = min(fitted, max(50, k + k // 2 + 5))
    per_component, cumulative = per_component[:shown], cumulative[:shown]
    xs = list(range(1, shown + 1))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.bar(xs, per_component, color="#9ecae1", label="per component")
    ax.plot(
        xs,
        cumulative,
        color="#08519c",
        marker="o" if len(xs) <= 60 else None,
        ms=3,
        label="cumulative",
    )
    target = pca.get("target_variance")
    if target is not None:
        ax.axhline(
            float(target),
            color="#636363",
            ls=":",
            lw=1,
            label=f"target variance {float(target):.0%}",
        )
    if k:
        at_k = pca.get("variance_at_k")
        at_k = float(at_k) if at_k is not None else cumulative[min(k, len(cumulative)) - 1]
        ax.axvline(k, color="#d62728", ls="--", lw=1.5)
        ax.annotate(
            f"k = {k}\n{at_k:.1%} of variance",
            xy=(k, at_k),
            xytext=(8, -28),
            textcoords="offset points",
            color="#d62728",
            fontsize=10,
            fontweight="bold",
        )
    with_accuracy = _plot_accuracy(ax, separability, shown)
    ax.set_xlabel("principal component" + (" / components kept (k)" if with_accuracy else ""))
    ax.set_ylabel("fraction of variance explained" + (" / Test accuracy" if with_accuracy else ""))
    ax.set_ylim(0, 1.05)
    ax.set_xlim(0.4, len(xs) + 0.6)
    ax.set_title(
        "PCA explained variance"
        + (" and class separability" if with_accuracy else "")
        + (f" (first {shown} of {fitted} components)" if shown < fitted else "")
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="center right", fontsize=9)
    return _save(plt, fig, out / "explained_variance.png")


def _plot_accuracy(ax: Any, separability: Mapping[str, Any] | None, shown: int) -> bool:
    """Test accuracy at each measured k (those within the ``shown`` components) and on the
    full features; False when there is nothing to draw."""
    if not measured(separability):
        return False
    assert separability is not None
    points = [
        (int(j), float(a))
        for j, a in zip(separability["ks"], separability.get("accuracy_by_k") or [], strict=False)
        if int(j) <= shown
    ]
    if points:
        ax.plot(
            [j for j, _ in points],
            [a for _, a in points],
            color="#31a354",
            marker="s",
            ms=5,
            label="Test accuracy on the first k components",
        )
    full = separability.get("accuracy_full")
    if full is not None:
        ax.axhline(
            float(full),
            color="#31a354",
            ls="--",
            lw=1,
            label=f"Test accuracy, all {separability.get('feature_dim', '')} features: "
            f"{float(full):.1%}",
        )
    return bool(points) or full is not None


def plot_scatter(plt: Any, points: Mapping[str, list], out: Path) -> Path | None:
    if not points["pc1"]:
        return None
    labels = sorted(set(points["label"]))
    # tab10 keeps neighbouring labels far apart; tab20 (light/dark pairs) only when needed.
    cmap, n_colours = ("tab10", 10) if len(labels) <= 10 else ("tab20", 20)
    colour_of = {label: plt.get_cmap(cmap)(i % n_colours) for i, label in enumerate(labels)}
    markers = "os^Dv<>P*X"
    fig, ax = plt.subplots(figsize=(8, 6), dpi=110)
    one_d = not points["pc2"]
    if one_d:
        # k == 1: one axis only; spread the labels vertically so they do not overlap.
        y_of = {label: i for i, label in enumerate(labels)}
        ys = [y_of[label] for label in points["label"]]
    else:
        ys = points["pc2"]
    for i, label in enumerate(labels):
        idx = [j for j, lab in enumerate(points["label"]) if lab == label]
        ax.scatter(
            [points["pc1"][j] for j in idx],
            [ys[j] for j in idx],
            s=18 if len(points["pc1"]) < 2000 else 6,
            color=colour_of[label],
            marker=markers[(i // n_colours) % len(markers)],
            alpha=0.8,
            label=label,
            edgecolors="none",
        )
    ax.set_xlabel("PC 1")
    if one_d:
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels if len(labels) <= MAX_BAR_LABELS else [])
        ax.set_ylabel("label (k = 1: only one component)")
    else:
        ax.set_ylabel("PC 2")
    ax.set_title(f"Images on the first principal components ({plural(len(labels), 'label')})")
    ax.grid(alpha=0.3)
    if len(labels) <= MAX_LEGEND_LABELS and not one_d:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(plt, fig, out / "pca_scatter.png")


def plot_counts(plt: Any, counts: Mapping[str, Any], out: Path) -> Path | None:
    by_split_label: Mapping[str, Mapping[str, int]] = counts.get("by_split_label") or {}
    by_label: Mapping[str, int] = counts.get("by_label") or {}
    if not by_split_label and by_label:
        by_split_label = {"all": by_label}
    if not by_split_label:
        return None
    totals: dict[str, int] = {}
    for per_label in by_split_label.values():
        for label, n in per_label.items():
            totals[label] = totals.get(label, 0) + int(n)
    labels = sorted(totals, key=lambda lab: (-totals[lab], lab))
    shown = labels[:MAX_BAR_LABELS]
    shown.reverse()  # largest at the top of a horizontal bar chart
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.28 * len(shown) + 1.2)), dpi=110)
    left = [0] * len(shown)
    colours = ["#3182bd", "#fd8d3c", "#74c476", "#9e9ac8"]
    for i, (split, per_label) in enumerate(sorted(by_split_label.items())):
        values = [int(per_label.get(label, 0)) for label in shown]
        ax.barh(shown, values, left=left, color=colours[i % len(colours)], label=split)
        left = [a + b for a, b in zip(left, values, strict=True)]
    title = "Valid images per label"
    if len(labels) > len(shown):
        title += f" ({len(shown)} most frequent of {plural(len(labels), 'label')})"
    ax.set_title(title)
    ax.set_xlabel("images")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(plt, fig, out / "counts_per_label.png")


def plot_timings(plt: Any, timings: Mapping[str, Any], out: Path) -> Path | None:
    stages = [(name, float(v)) for name, v in timings.items() if name != "total" and v is not None]
    if not stages:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(stages) + 1.4), dpi=110)
    names = [name for name, _ in stages][::-1]
    values = [v for _, v in stages][::-1]
    bars = ax.barh(names, values, color="#756bb1")
    ax.bar_label(bars, labels=[f"{v:.1f} s" for v in values], padding=3, fontsize=9)
    total = timings.get("total")
    ax.set_title("Job stages" + (f" (total {float(total):.1f} s)" if total is not None else ""))
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(values) * 1.2 or 1)
    ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, out / "timings.png")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
