"""What is in the store at a glance: which tables exist, their row counts, decisions by
scorer (the demo's closing summary), the event-time span (the report)."""

from __future__ import annotations

from typing import Any

from monitor.store.base import Store
from monitor.store.tables import TABLES


def present_tables(store: Store) -> set[str]:
    """Names of the tables that exist in the store's database."""
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
    )
    return {row["name"] for row in rows}


def table_counts(store: Store, present: set[str]) -> dict[str, int]:
    """Rows per Vigil table (``FINAL``: redelivered rows count once), in schema order."""
    db = store.database
    return {
        t.name: int(store.query(f"SELECT count() AS n FROM {db}.{t.name} FINAL")[0]["n"])
        for t in TABLES
        if t.name in present
    }


def decision_counts(store: Store) -> dict[str, dict[str, int]]:
    """Sampling decisions: scorer -> decision -> events (``FINAL``: the latest per event)."""
    out: dict[str, dict[str, int]] = {}
    for row in store.query(
        f"SELECT scorer, decision, count() AS n FROM {store.database}.decisions FINAL "
        "GROUP BY scorer, decision ORDER BY scorer, decision"
    ):
        out.setdefault(row["scorer"], {})[row["decision"]] = int(row["n"])
    return out


def event_time_span(store: Store) -> tuple[int, Any, Any]:
    """(events stored, earliest event time, latest event time); times None when empty."""
    got = store.query(
        f"SELECT count() AS n, min(ts) AS lo, max(ts) AS hi FROM {store.database}.events"
    )
    n = int(got[0]["n"] or 0) if got else 0
    return (n, got[0]["lo"], got[0]["hi"]) if n else (0, None, None)
