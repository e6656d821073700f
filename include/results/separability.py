"""The report's class-separability section, from ``metrics.json``'s ``separability``.

The job (:mod:`spark_jobs.separability`) fits a multinomial logistic regression on the
Training images and scores it on the Test images, on the PCA's first components and on
the full features. This section shows those accuracies (their curve is drawn on the
explained-variance figure, :func:`include.results.plots.plot_explained_variance`), says
why they are absent when they are, and warns that they mean nothing on random weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.results.html import esc, fmt, table

HEADING = "Class separability (Test accuracy)"

RANDOM_WEIGHTS_WARNING = (
    "WARNING: the features come from random weights, so these accuracies are meaningless: "
    "they say how well random projections of the images' pixels tell the labels apart, not "
    "how well MobileNetV2 features do. Rerun with ImageNet weights for a real figure."
)


def measured(section: Mapping[str, Any] | None) -> bool:
    """Whether ``section`` holds accuracies (not ``absent``, not missing)."""
    return bool(section) and "absent" not in section and bool(section.get("ks"))


def _pct(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "n/a"


def separability_section(section: Mapping[str, Any] | None, *, meaningful: bool) -> str:
    """The section's HTML: the accuracies, or why there are none."""
    parts = [f"<h2>{esc(HEADING)}</h2>"]
    if not section:
        parts.append(
            '<p class="muted">Not measured: this metrics.json has no separability section '
            "(written by a job from before the measurement).</p>"
        )
        return "\n".join(parts)
    if "absent" in section:
        parts.append(f"<p>Absent: {esc(section['absent'])}.</p>")
        return "\n".join(parts)
    if not measured(section):
        parts.append('<p class="muted">Not measured: the separability section is empty.</p>')
        return "\n".join(parts)
    if not meaningful:
        parts.append(f'<div class="banner warn">{esc(RANDOM_WEIGHTS_WARNING)}</div>')
    labels = section.get("labels") or []
    k = section.get("k")
    available = section.get("train_rows_available")
    sample = (
        f" (a seeded sample of about {section.get('max_train_per_label')} per label, of "
        f"{available})"
        if available is not None and available != section.get("train_rows")
        else ""
    )
    parts.append(
        "<p>A multinomial logistic regression (Spark MLlib) fitted on the "
        f"{section.get('train_rows', 'n/a')} Training images{sample} of {len(labels)} labels and "
        f"scored on the {section.get('test_rows', 'n/a')} Test images: the fraction of Test "
        "images given their own label, on the first components of the PCA (the curve on "
        "the explained-variance figure above) and on the full features.</p>"
    )
    rows = [
        (
            f"first {j} components" + (" (the PCA's k)" if j == k else ""),
            _pct(accuracy),
        )
        for j, accuracy in zip(section["ks"], section.get("accuracy_by_k") or [], strict=False)
    ]
    rows.append(
        (f"all {section.get('feature_dim', 'n/a')} features", _pct(section.get("accuracy_full")))
    )
    rows.append(("chance (always the most frequent Training label)", _pct(section.get("chance"))))
    parts.append(table(["features", "Test accuracy"], rows))
    unseen = section.get("test_rows_unseen_label") or 0
    if unseen:
        parts.append(
            f"<p>{unseen} Test images have a label with no Training image: they count as wrong.</p>"
        )
    classifier = section.get("classifier") or {}
    parts.append(
        '<p class="muted">'
        + esc(
            f"{classifier.get('family', 'multinomial')} logistic regression, at most "
            f"{classifier.get('max_iter', 'n/a')} L-BFGS iterations (used: "
            f"{classifier.get('iterations_by_k', 'n/a')} for the components, "
            f"{classifier.get('iterations_full', 'n/a')} for all features), L2 penalty "
            f"{classifier.get('reg_param', 'n/a')}; measured in {fmt(section.get('seconds'), 1)} s."
        )
        + "</p>"
    )
    return "\n".join(parts)
