"""Alerting: rules, streaming statistics, alert state and notifiers (the public surface).

- `alert_timer(settings, store)`: the event-time timer registered in `monitor.assembly`
  (TIMERS["alerts"]); `vigil replay` and the live worker both run it.
- `list_alerts(store, since=None)`: one dict per alert episode, latest state first-class;
  `format_alert(alert)`: one readable line (what the stdout notifier prints).
- `run_alerts_command(settings, as_json, since, examples)`: `vigil alerts`.

The pieces: `monitor.alerts_rules` (rules as data, built-in defaults in
``monitor/rules/default.yaml``), `monitor.alerts_stats` and `monitor.alerts_model` (pure
maths: CUSUM on LLRs, thresholds from a false-alarm budget, judge reliability),
`monitor.alerts_metrics` (SQL), `monitor.alerts_state` (pending / firing / resolved with
hysteresis and cooldown), `monitor.alerts_eval` (the evaluator), `monitor.notifiers`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from monitor.alerts_eval import AlertEvaluator
from monitor.alerts_format import format_alert, parse_ts
from monitor.alerts_rules import Rule, load_rules, parse_rules
from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.store.base import Store

__all__ = [
    "AlertEvaluator",
    "Rule",
    "alert_timer",
    "format_alert",
    "get_alert",
    "list_alerts",
    "load_rules",
    "parse_rules",
    "parse_since",
    "run_alerts_command",
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


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an RFC 3339 time, or a duration back from now (``30m``, ``6h``, ``2d``)."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return (now or datetime.now(UTC)) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        return parse_ts(text)
    except ValueError as exc:
        raise ConfigError(
            f"--since {text!r}: give an RFC 3339 time or a duration like 30m, 6h, 2d"
        ) from exc


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("ts", "onset", "fired_at", "resolved_at"):
        ts = parse_ts(out.get(key))
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
        out = [a for a in out if (parse_ts(a["ts"]) or since) >= since]
    return out


def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {store.database}.alerts FINAL WHERE alert_id = {{id:String}} "
        "ORDER BY ts DESC LIMIT 1",
        {"id": alert_id},
    )
    return _clean(rows[0]) if rows else None


def run_alerts_command(
    settings: Settings, *, as_json: bool, since: str | None, examples: str | None
) -> int:
    """`vigil alerts`: list alerts, or (``--examples ID``) the failing events behind one."""
    from monitor.store import open_store

    store = open_store(settings)
    try:
        if examples:
            alert = get_alert(store, examples)
            if alert is None:
                raise ConfigError(f"no alert {examples!r}")
            rows = store.query(alert["query"]) if alert["query"] else []
            if as_json:
                print(orjson.dumps({"alert": alert, "examples": rows}, default=str).decode())
            else:
                print(format_alert(alert))
                print(alert["query"])
                for row in rows:
                    print("  " + "  ".join(str(v) for v in row.values()))
            return 0
        alerts = list_alerts(store, parse_since(since))
        if as_json:
            print(orjson.dumps(alerts, default=str).decode())
        elif not alerts:
            print("no alerts")
        else:
            for alert in alerts:
                print(f"{alert['alert_id']}  {format_alert(alert)}")
        return 0
    finally:
        store.close()
