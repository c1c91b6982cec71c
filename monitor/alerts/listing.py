"""Reading alerts back: one dict per alert episode, as `vigil alerts`, the demo and the
notifiers see them (timestamps as ISO text, non-finite numbers as None, details parsed).
"""

from __future__ import annotations

import contextlib
import math
from datetime import datetime
from typing import Any

import orjson

from monitor.store.base import Store
from monitor.store.queries import alert_examples as qx
from monitor.store.queries import alerts as q
from monitor.times import parse_optional_ts

__all__ = ["alert_examples", "get_alert", "list_alerts"]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("ts", "onset", "fired_at", "resolved_at"):
        ts = parse_optional_ts(out.get(key))
        out[key] = ts.isoformat(timespec="seconds").replace("+00:00", "Z") if ts else None
    for key in ("value", "baseline", "effect", "statistic", "threshold", "confidence"):
        value = out.get(key)
        out[key] = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
    if isinstance(out.get("details"), str):
        with contextlib.suppress(orjson.JSONDecodeError):
            out["details"] = orjson.loads(out["details"])
    return out


def list_alerts(
    store: Store, since: datetime | None = None, *, states: tuple[str, ...] = ("firing", "resolved")
) -> list[dict[str, Any]]:
    """One dict per alert episode (alert_id) in its latest state, newest first.

    ``since`` keeps episodes whose latest transition is at or after it (event time).
    Pending and cleared transitions are internal and left out unless ``states`` asks.
    """
    out = [_clean(row) for row in q.alert_episodes(store, states)]
    if since is not None:
        out = [a for a in out if (parse_optional_ts(a["ts"]) or since) >= since]
    return out


def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    """The latest state of one alert episode, None when there is no such alert."""
    rows = q.alert_by_id(store, alert_id)
    return _clean(rows[0]) if rows else None


def alert_examples(store: Store, alert_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The failing events (for drift: the flagged reports) behind one alert episode: its
    examples query as stored when it fired, and its rows; ('', []) for a rule without one."""
    sql = qx.alert_examples_query(store, alert_id) or ""
    return sql, store.query(sql) if sql else []
