"""`vigil report`: one self-contained HTML file of what the dashboards show.

It runs the dashboards' own panel SQL (`dashboards.overview`, `dashboards.failures`) on
the store, with the Grafana macros expanded for the report's time range, and draws the
time series as inline SVG (`dashboards.svg`): the file opens anywhere with no network and
no script. Sections: score trends by model version, negative feedback, safety incidents
and toxicity, drift with the shifted clusters and their example prompts, the alert
timeline, the newest failure examples and the eval-set versions.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from dashboards.failures import PANELS as FAILURE_PANELS
from dashboards.macros import TimeRange, expand
from dashboards.overview import PANELS as OVERVIEW_PANELS
from dashboards.panels import PanelSpec
from dashboards.svg import line_chart
from monitor.store.base import Store
from monitor.store.queries.overview import event_time_span
from monitor.times import now_utc

_PANELS = {p.key: p for p in (*OVERVIEW_PANELS, *FAILURE_PANELS)}
#: (section title, panel key, y unit) of the charts, in page order.
_CHARTS = (
    ("Judge scores by model version", "judge_scores", ""),
    ("Negative feedback by model version", "negative_feedback", ""),
    ("Traffic by model version", "traffic", ""),
    ("Latency", "latency", " ms"),
    ("Safety incidents by type", "incidents", ""),
    ("Toxicity p95 by model version", "toxicity", ""),
    ("Drift (MMD effect) by model version", "drift", ""),
)
_TABLES = (
    ("Alert timeline", "alerts"),
    ("Newest failure examples", "top_failures"),
    ("Eval-set versions", "evalset_versions"),
)
_MAX_POINTS = 150


@dataclass(frozen=True)
class Report:
    html: str
    charts: int
    """Charts drawn with data (the rest say there was none)."""
    chart_slots: int
    sections: int


def _time(value: Any) -> datetime:
    text = str(value).replace(" ", "T")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _series(panel: PanelSpec, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Long rows (time, label, value) or wide rows (time, v1, v2...) as name -> points."""
    out: dict[str, list[Any]] = defaultdict(list)
    cols = panel.columns
    labelled = len(cols) == 3 and not all(
        isinstance(r[cols[1]], int | float) for r in rows[:20]
    )
    for row in rows:
        at = _time(row["time"])
        if labelled:
            out[str(row[cols[1]]) or "(none)"].append((at, _number(row[cols[2]])))
        else:
            for col in cols[1:]:
                out[col].append((at, _number(row[col])))
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return html.escape(f"{value:.3g}")
    if isinstance(value, list | dict):
        return html.escape(orjson.dumps(value).decode())
    return html.escape(str(value)[:300])


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return '<p class="empty">Nothing in this range.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _clusters(reports: Sequence[dict[str, Any]]) -> str:
    """The shifted clusters of the drifted reports: terms, share then and now, examples."""
    items = []
    for report in reports[:10]:
        try:
            clusters = orjson.loads(report.get("top_clusters") or "[]")
        except orjson.JSONDecodeError:
            clusters = []
        for c in clusters[:3]:
            if not isinstance(c, dict):
                continue
            terms = ", ".join(str(t) for t in (c.get("terms") or [])[:8])
            examples = "".join(
                f"<li>{html.escape(str(e)[:200])}</li>" for e in (c.get("examples") or [])[:3]
            )
            items.append(
                f'<div class="cluster"><b>{html.escape(str(report["time"]))} '
                f"{html.escape(str(report['model_version']) or 'all')}: "
                f"{html.escape(str(c.get('label', '')))}</b> "
                f"share {_number(c.get('ref_share')):.1%} &rarr; "
                f"{_number(c.get('cur_share')):.1%}"
                f"<div>terms: {html.escape(terms)}</div><ul>{examples}</ul></div>"
            )
    return "".join(items) or '<p class="empty">No drift found in this range.</p>'


def build_report(
    store: Store, since: datetime | None = None, until: datetime | None = None
) -> Report:
    """The report over [since, until] (default: the stored event time span, up to now)."""
    stored, first, last = event_time_span(store)
    lo = _time(first) if stored else now_utc() - timedelta(hours=6)
    hi = _time(last) if stored else now_utc()
    # Up to now: dead letters and captures are dated when they happen, events by their own
    # time; the chart interval follows the events' span (about _MAX_POINTS points).
    start, end = since or lo, (until or max(hi, now_utc())) + timedelta(minutes=1)
    seconds = max(60.0, (min(end, hi) - start).total_seconds())
    window = TimeRange(start, end, max(60.0, math.ceil(seconds / _MAX_POINTS / 60) * 60))

    def rows(key: str) -> list[dict[str, Any]]:
        return store.query(expand(_PANELS[key].render(store.database), window))

    sections, charts = [], 0
    for title, key, unit in _CHARTS:
        series = _series(_PANELS[key], rows(key))
        charts += bool(series)
        sections.append((title, key, line_chart(series, unit=unit, title=title)))
    drifted = rows("shifted_topics")
    sections.append(("Shifted topics", "shifted_topics", _clusters(drifted)))
    for title, key in _TABLES:
        panel = _PANELS[key]
        shown = [c for c in panel.columns if c != "command"]
        sections.append((title, key, _table(rows(key), shown)))
    page = _page(start, end, stored, sections)
    return Report(page, charts, len(_CHARTS), len(sections))


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2430}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5a6472}.chart{width:100%;height:auto;font-size:11px;fill:#5a6472}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:12px;margin:4px 0 0 56px}
.key i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
table.rows{border-collapse:collapse;width:100%;font-size:12px}
.rows th,.rows td{border-bottom:1px solid #e3e6ea;padding:4px 6px;text-align:left;
vertical-align:top}.empty{color:#8a94a2;font-style:italic}
.cluster{margin:8px 0;padding:8px;background:#f5f7fa;border-radius:4px}
nav a{margin-right:12px}
"""


def _page(
    start: datetime, end: datetime, stored: int, sections: Sequence[tuple[str, str, str]]
) -> str:
    nav = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for title, key, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>'
        for title, key, content in sections
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Vigil report</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Vigil report</h1>"
        f'<p class="meta">{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; '
        f"{stored:,} events stored; generated {now_utc():%Y-%m-%d %H:%M} UTC</p>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )
