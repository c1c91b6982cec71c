"""Alerting: rules, streaming statistics, alert state and notifiers (the public surface).

- `alert_timer(settings, store)`: the event-time timer registered in `monitor.assembly`
  (TIMERS["alerts"]); `vigil replay` and the live worker both run it.
- `list_alerts(store, since=None)`: one dict per alert episode, latest state first-class;
  `format_alert(alert)`: one readable line (what the stdout notifier prints).

The pieces: `monitor.alerts.rules` (rules as data, built-in defaults in
``monitor/alerts/default_rules.yaml``), `monitor.alerts.stats` and `monitor.alerts.model` (pure
maths: CUSUM on LLRs, thresholds from a false-alarm budget, judge reliability),
`monitor.alerts.metrics` (SQL), `monitor.alerts.state` (pending / firing / resolved with
hysteresis and cooldown), `monitor.alerts.evaluator` (the evaluator), `monitor.notifiers`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from monitor.alerts.evaluator import AlertEvaluator
from monitor.alerts.rules import Rule, load_rules, parse_rules
from monitor.config import Settings
from monitor.notifiers.format import format_alert
from monitor.store.base import Store
from monitor.times import parse_optional_ts

__all__ = [
    "AlertEvaluator",
    "Rule",
    "alert_timer",
    "format_alert",
    "get_alert",
    "list_alerts",
    "load_rules",
    "parse_rules",
]

_COLUMNS = (
    "alert_id, rule, metric, severity, segment, segment_key, state, previous, reason, ts, onset, "
    "fired_at, resolved_at, value, baseline, effect, statistic, threshold, n, confidence, message, "
    "query, command, details, notified"
)


def alert_timer(settings: Settings, store: Store) -> tuple[float, Callable[[datetime], Any]] | None:
    """(period in seconds, async fn(as_of)) for the pipeline, or None when alerting is off."""
    if not settings.alerts.enabled:
        return None
    return settings.alerts.every_minutes * 60.0, AlertEvaluator(settings, store)


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
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {store.database}.alerts FINAL "
        "WHERE state IN {states:Array(String)} ORDER BY ts DESC LIMIT 1 BY alert_id",
        {"states": list(states)},
    )
    out = [_clean(row) for row in rows]
    if since is not None:
        out = [a for a in out if (parse_optional_ts(a["ts"]) or since) >= since]
    return out


def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {store.database}.alerts FINAL WHERE alert_id = {{id:String}} "
        "ORDER BY ts DESC LIMIT 1",
        {"id": alert_id},
    )
    return _clean(rows[0]) if rows else None
