"""Reading drift reports, and how they read on a terminal (`vigil drift`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.store.base import Store
from monitor.store.queries import drift as queries

#: The one reason of a report whose reference was too small to test against.
NOT_ENOUGH_REFERENCE = "not_enough_reference"


def list_reports(
    store: Store,
    since: datetime | None = None,
    model_version: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Drift reports, newest first; ``top_clusters`` decoded. ``model_version`` '' = pooled."""
    rows = queries.drift_reports(
        store, since or datetime(1970, 1, 1, tzinfo=UTC), model_version, limit
    )
    for row in rows:
        row["top_clusters"] = orjson.loads(row["top_clusters"]) if row.get("top_clusters") else []
    return rows


def latest_report_ts(store: Store) -> datetime | None:
    """Event time of the newest drift report, or None when there is none."""
    return queries.last_report_ts(store)


def _fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def render_reports(rows: list[dict[str, Any]]) -> str:
    """Human-readable listing for `vigil drift`."""
    if not rows:
        return "no drift reports"
    lines = []
    for r in rows:
        scope = r["model_version"] or "all"
        if r["drifted"]:
            flag = "DRIFT " + ",".join(r["reasons"])
        elif NOT_ENOUGH_REFERENCE in r["reasons"]:
            flag = "not enough reference"
        else:
            flag = "ok"
        lines.append(
            f"{str(r['ts'])[:19]}  {scope:<20} {flag:<28} mmd p={_fmt_p(r['mmd_p_value'])} "
            f"psi={r['psi']:.3f} new_topic={r['new_topic_rate']:.1%} "
            f"(base {r['new_topic_base_rate']:.1%}) cos={r['centroid_cosine']:.4f} "
            f"n={r['n_reference']}/{r['n_window']} ({r['reference_kind']})"
        )
        if r["drifted"]:
            for c in r["top_clusters"]:
                judge = ", ".join(
                    f"{name} {v['delta']:+.2f} (n={v['n_reference']}/{v['n_window']})"
                    for name, v in c["judge"].items()
                    if v.get("delta") is not None
                )
                example = c["examples"][0] if c["examples"] else ""
                terms = ", ".join(c.get("terms") or [])
                lines.append(
                    f"    {c['label']:<12} share {c['ref_share']:.1%} -> {c['cur_share']:.1%}"
                    f" (x{c['ratio']:.1f})"
                    + (f"  terms: {terms}" if terms else "")
                    + (f"  judge: {judge}" if judge else "")
                    + (f"  e.g. {example[:80]!r}" if example else "")
                )
    return "\n".join(lines)
