"""What the demo prints at the end: rows per table, decisions by scorer, alerts.

Read-only, and run after the worker has stopped (the embedded store allows one process
per data directory). Kept apart from the Kafka wiring so it can move to ``monitor/``
once `vigil alerts` owns the same queries.
"""

from __future__ import annotations

from typing import Any

from monitor.config import Settings
from monitor.store import open_store
from monitor.store.base import Store
from monitor.store.schema import TABLES


def _tables(store: Store) -> set[str]:
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
    )
    return {row["name"] for row in rows}


def _alerts(store: Store, present: set[str]) -> list[dict[str, Any]] | None:
    """ALERTS CALL SITE: rows of the alerts table, newest first; None while it does not exist.

    monitor/alerts.py (another helper) owns that table; when it offers a reader, call it here.
    """
    if "alerts" not in present:
        return None
    return store.query(f"SELECT * FROM {store.database}.alerts FINAL ORDER BY 1 DESC LIMIT 50")


def stored_report(settings: Settings) -> dict[str, Any]:
    """Counts per table (FINAL), decisions per scorer and outcome, and the alerts."""
    store = open_store(settings)
    try:
        db = store.database
        present = _tables(store)
        names = [t.name for t in TABLES if t.name in present] + sorted(
            present - {t.name for t in TABLES}
        )
        tables = {
            name: int(store.query(f"SELECT count() AS n FROM {db}.{name} FINAL")[0]["n"])
            for name in names
        }
        decisions: dict[str, dict[str, int]] = {}
        if "decisions" in present:
            for row in store.query(
                f"SELECT scorer, decision, count() AS n FROM {db}.decisions FINAL "
                "GROUP BY scorer, decision ORDER BY scorer, decision"
            ):
                decisions.setdefault(row["scorer"], {})[row["decision"]] = int(row["n"])
        return {"tables": tables, "decisions": decisions, "alerts": _alerts(store, present)}
    finally:
        store.close()
