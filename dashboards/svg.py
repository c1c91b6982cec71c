"""Inline SVG charts for the HTML report: no script, no network, nothing to load.

`line_chart` draws one polyline per series over a shared time axis, with a light grid,
the value range on the y axis, the first and last time on the x axis, and a legend.
Every label is escaped here; callers pass plain values.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

Series = Mapping[str, Sequence[tuple[datetime, float]]]

_PALETTE = ("#2f6fde", "#e0542d", "#2a9d5c", "#8e44ad", "#d4a017", "#17a2b8", "#c2185b",
            "#5d6d7e")  # fmt: skip
_W, _H = 760, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 12, 28


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def line_chart(series: Series, *, unit: str = "", title: str = "") -> str:
    """One SVG of every series (name -> [(time, value)]); finite values only."""
    points = {
        name: [(t, v) for t, v in values if isinstance(v, int | float) and math.isfinite(v)]
        for name, values in series.items()
    }
    points = {name: values for name, values in points.items() if values}
    if not points:
        return '<p class="empty">No data in this range.</p>'
    times = [t.timestamp() for values in points.values() for t, _ in values]
    ys = [v for values in points.values() for _, v in values]
    t0, t1 = min(times), max(times)
    lo, hi = min(0.0, min(ys)), max(ys)
    if hi == lo:
        hi = lo + 1.0
    if t1 == t0:
        t1 = t0 + 60.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(ts: float) -> float:
        return _LEFT + (ts - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return _TOP + plot_h - (v - lo) / (hi - lo) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e3e6ea"/>'
            f'<text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{html.escape(_fmt(v) + unit)}</text>"
        )
    for ts, anchor in ((t0, "start"), (t1, "end")):
        label = datetime.fromtimestamp(ts, tz=UTC).strftime("%m-%d %H:%M")
        parts.append(
            f'<text x="{x(ts):.1f}" y="{_H - 8}" text-anchor="{anchor}">{label}</text>'
        )
    for i, (name, values) in enumerate(sorted(points.items())):
        color = _PALETTE[i % len(_PALETTE)]
        coords = " ".join(
            f"{x(t.timestamp()):.1f},{y(v):.1f}" for t, v in sorted(values, key=lambda p: p[0])
        )
        parts.append(
            f'<polyline class="series" data-series="{html.escape(name)}" fill="none" '
            f'stroke="{color}" stroke-width="1.8" points="{coords}"/>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{_PALETTE[i % len(_PALETTE)]}"></i>'
        f"{html.escape(name)}</span>"
        for i, name in enumerate(sorted(points))
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'
