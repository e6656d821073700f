"""The report's EMR Serverless cost section: billed vCPU-, memory- and storage-hours of the
job run (``job_run.json`` beside the results), priced, next to the budget guard's estimate."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.costs.serverless import JOB_RUN_FILE, serverless_cost_summary
from include.results.html import esc, fmt, table


def load_serverless_cost(run_dir: Path) -> dict[str, Any] | None:
    """The priced summary of ``<run_dir>/job_run.json``; None when there is none.

    Raises ValueError for a damaged file (the report shows the reason instead).
    """
    path = Path(run_dir) / JOB_RUN_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if not saved.get("jobRun") and saved.get("unavailable"):
            raise ValueError(str(saved["unavailable"]))
        job_run = saved["jobRun"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a saved job run: {exc}") from exc
    architecture = (saved.get("application") or {}).get("architecture") or "X86_64"
    return serverless_cost_summary(
        job_run, region=str(saved.get("region")), architecture=architecture
    )


def serverless_cost_section(run_dir: Path, estimate: Mapping[str, Any] | None) -> str | None:
    """HTML of the section, or None when the run is not a Serverless one."""
    try:
        cost = load_serverless_cost(run_dir)
    except ValueError as exc:
        return (
            "<h2>EMR Serverless cost (estimate)</h2>"
            f'<div class="banner warn">cost estimate unavailable: {esc(exc)}</div>'
        )
    if cost is None:
        return None
    usd = cost["estimated_usd"]
    rows = [
        (
            "actual (job run's billedResourceUtilization)",
            fmt(cost["vcpu_hours"], 4),
            fmt(cost["memory_gb_hours"], 4),
            fmt(cost["storage_gb_hours"], 4),
            f"${usd:.4f}" if usd is not None else f"unknown ({cost['unpriced']})",
        )
    ]
    if estimate and estimate.get("kind") == "emr-serverless":
        rows.insert(
            0,
            (
                f"estimated before the run (budget {fmt(estimate.get('max_cost_usd'), 2)} USD)",
                fmt(estimate.get("vcpu_hours"), 4),
                fmt(estimate.get("memory_gb_hours"), 4),
                fmt(estimate.get("storage_gb_hours"), 4),
                f"${estimate.get('estimated_usd', 0):.4f}",
            ),
        )
    return "\n".join(
        [
            "<h2>EMR Serverless cost (estimate)</h2>",
            table(
                ["job run", "application", "state", "architecture", "execution seconds"],
                [
                    (
                        cost["job_run_id"],
                        cost["application_id"],
                        cost["state"],
                        cost["architecture"],
                        cost["execution_seconds"],
                    )
                ],
            ),
            table(["", "vCPU-hours", "memory GB-hours", "storage GB-hours", "USD"], rows),
            f'<p class="muted">{esc(cost["price_basis"])}</p>',
        ]
    )
