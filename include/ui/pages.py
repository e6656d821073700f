"""HTML of the plugin's pages: the runs & costs table (``nav`` view), a run without results
(its Report tab), and the bar added above a served report. Pure: data in, HTML out; every
value is escaped (:func:`include.results.html.esc`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from include.results.html import esc, fmt

_CSS = """
body{font-family:system-ui,sans-serif;margin:1em 1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.9em} th{background:#f3f3f3} td.num{text-align:right}
.banner{padding:.8em 1em;border-radius:6px;margin:1em 0}
.warn{background:#fde0dc;border:1px solid #d62728} .ok{background:#e5f5e0;border:1px solid #74c476}
.info{background:#e8f0fe;border:1px solid #6b8fd6} .ttl{color:#b00;font-weight:bold}
.muted{color:#666;font-size:.9em} .bar{font-size:.9em;margin:.3em 0 1em}
"""


REPORT_ROUTE = "fruits_report"
"""The Report tab's ``url_route``: the UI shows it at ``/dags/<dag>/runs/<run>/plugin/<it>``."""
RUNS_ROUTE = "fruits_runs"
"""The ``url_route`` of the runs page: the UI shows it at ``/plugin/<it>``."""


def run_base(prefix: str, dag_id: str, run_id: str) -> str:
    """``<prefix>/runs/<dag id>/<run id>``, each segment URL-quoted (run ids hold ``:+``)."""
    return f"{prefix}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def report_tab(dag_id: str, run_id: str) -> str:
    """The run's Report tab in the Airflow UI (links open it in the whole window)."""
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/plugin/{REPORT_ROUTE}"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _usd(value: Any) -> str:
    return "n/a" if value is None else f"${value:.4f}" if value < 1 else f"${value:.2f}"


def report_bar(prefix: str, dag_id: str, run_id: str, source: str) -> str:
    """Links above a served report: its metrics.json, its costs, the runs table."""
    base = run_base(prefix, dag_id, run_id)
    return (
        f'<div class="bar muted">{esc(dag_id)} / {esc(run_id)} &middot; '
        f'<a href="{esc(base)}/metrics.json">metrics.json</a> &middot; '
        f'<a href="{esc(base)}/costs">costs</a> &middot; '
        f'<a href="/plugin/{RUNS_ROUTE}" target="_top">all runs &amp; costs</a> '
        f"&middot; from {esc(source)}</div>"
    )


def with_bar(report_html: str, bar: str) -> str:
    """The report with ``bar`` at the top of its body."""
    head, sep, rest = report_html.partition("<body>")
    return f"{head}{sep}{bar}{rest}" if sep else bar + report_html


def no_results_page(
    *,
    dag_id: str,
    run_id: str,
    kind: str,
    text: str,
    earlier: Mapping[str, Any] | None = None,
    note: str = "",
) -> str:
    """The Report tab of a run without results: why, and for a skipped run the earlier
    run holding the same results (a link to its report)."""
    body = [f"<h1>Report of {esc(dag_id)} / {esc(run_id)}</h1>"]
    style = {"failed": "warn", "skipped": "info", "pending": "info"}.get(kind, "warn")
    body.append(f'<div class="banner {style}" id="outcome" data-kind="{esc(kind)}">{esc(text)}')
    if kind == "skipped":
        if earlier:
            link = report_tab(str(earlier["dag_id"]), str(earlier["run_id"]))
            body.append(
                f'<p id="earlier">Same results as <a href="{esc(link)}" target="_top">'
                f"{esc(earlier['run_id'])}"
                f"</a> (finished {esc(earlier.get('finished_at', '?'))}; results "
                f"{esc(earlier.get('results_uri', '?'))}).</p>"
            )
        else:
            body.append(f'<p id="earlier">{esc(note)}</p>')
    body.append("</div>")
    body.append(f'<p class="muted"><a href="/plugin/{RUNS_ROUTE}" target="_top">all runs</a></p>')
    return _page(f"{dag_id} {run_id}", "".join(body))


def _resources_html(resources: Mapping[str, Any] | None) -> str:
    if resources is None:
        return '<p class="muted">Not shown: you may not read the EMR DAGs.</p>'
    ttl = resources["ttl_hours"]
    parts = [
        f'<p class="muted">Region {esc(resources["region"])}; the sweeper removes what is '
        f"older than {ttl:g} h (FRUITS_CLUSTER_TTL_HOURS).</p>"
    ]
    if resources.get("error"):
        parts.append(
            f'<div class="banner warn">Could not list them: {esc(resources["error"])}</div>'
        )
        return "".join(parts)
    rows = []
    for c in resources["clusters"]:
        flag = ' <span class="ttl">past TTL</span>' if c["past_ttl"] else ""
        rows.append(
            f"<tr><td>EMR cluster</td><td>{esc(c['cluster_id'])}</td><td>{esc(c['name'])}</td>"
            f"<td>{esc(c['state'])}</td><td class=num>{c['age_hours']:.2f} h{flag}</td>"
            f"<td class=num>{_usd(c['estimated_usd'])}</td></tr>"
        )
    for a in resources["applications"]:
        flag = ' <span class="ttl">past TTL</span>' if a["past_ttl"] else ""
        runs = len(a.get("job_runs") or [])
        rows.append(
            f"<tr><td>EMR Serverless application</td><td>{esc(a['application_id'])}</td>"
            f"<td>{esc(a['name'])} ({esc(a['created_by'])})</td><td>{esc(a['state'])}, "
            f"{runs} job run(s) not over</td><td class=num>{a['age_hours']:.2f} h{flag}</td>"
            f"<td class=num>{_usd(a.get('cost_usd'))}</td></tr>"
        )
    if not rows:
        parts.append('<p id="resources-none">No active cluster or application.</p>')
    else:
        head = "<tr><th>kind</th><th>id</th><th>name</th><th>state</th><th>age</th>"
        parts.append(
            f'<table id="resources">{head}<th>cost so far</th></tr>{"".join(rows)}</table>'
        )
    return "".join(parts)


def runs_page(*, rows: Sequence[Mapping[str, Any]], resources: Mapping[str, Any] | None) -> str:
    """The ``nav`` view: what bills now, then the recent runs of the pipeline DAGs.

    Each row: ``dag_id``, ``run_id``, ``state``, ``duration_s``, ``outcome`` and, for a run
    with results, its :func:`include.ui.results.run_summary` under ``summary``.
    """
    body = ["<h1>Fruits runs &amp; costs</h1>", "<h2>Running and billing now</h2>"]
    body.append(_resources_html(resources))
    body.append("<h2>Recent runs</h2>")
    head = (
        "<tr><th>DAG</th><th>run</th><th>state</th><th>images</th><th>k</th>"
        "<th>variance kept</th><th>featurised / reused</th><th>duration</th>"
        "<th>estimated cost</th><th>actual cost</th><th>report</th></tr>"
    )
    lines = []
    for row in rows:
        s = row.get("summary") or {}
        variance = s.get("variance")
        duration = row.get("duration_s")
        link = report_tab(row["dag_id"], row["run_id"])
        label = "report" if s.get("report") else row.get("outcome", "why none")
        cache = f"{fmt(s.get('featurized'))} / {fmt(s.get('reused'))}" if s else "-"
        lines.append(
            f"<tr><td>{esc(row['dag_id'])}</td><td>{esc(row['run_id'])}</td>"
            f"<td>{esc(row['state'])}</td><td class=num>{esc(fmt(s.get('images')))}</td>"
            f"<td class=num>{esc(fmt(s.get('k')))}</td>"
            f"<td class=num>{'-' if variance is None else f'{variance:.1%}'}</td>"
            f"<td class=num>{esc(cache)}</td>"
            f"<td class=num>{'-' if duration is None else f'{duration:.0f} s'}</td>"
            f"<td class=num>{_usd(s.get('estimated_usd'))}</td>"
            f"<td class=num>{_usd(s.get('actual_usd'))}</td>"
            f'<td><a href="{esc(link)}" target="_top">{esc(label)}</a></td></tr>'
        )
    if lines:
        body.append(f'<table id="runs">{head}{"".join(lines)}</table>')
    else:
        body.append('<p id="runs-none">No run of the pipeline DAGs yet.</p>')
    return _page("Fruits runs & costs", "".join(body))
