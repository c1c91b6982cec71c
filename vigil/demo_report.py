"""What the demo prints: alerts as they fire, then rows per table, decisions and alerts.

Read-only. While the worker runs it owns the embedded store, so `open_store` finds the
daemon's HTTP endpoint through the lock file and reads through it; after the worker has
stopped the same call opens the directory itself. A read that happens just before the
worker claims the directory holds chDB's lock for a moment; the starting worker waits
that out (`monitor.store.lock.own_embedded_store`).
"""

from __future__ import annotations

from typing import Any

from monitor.alerts.listing import list_alerts
from monitor.config import Settings
from monitor.errors import StoreError
from monitor.notifiers.format import format_alert
from monitor.store import open_store
from monitor.store.queries.overview import decision_counts, present_tables, table_counts


class AlertWatcher:
    """Yields each alert transition (firing, resolved) once, as the worker stores it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._seen: set[tuple[str, str]] = set()

    def new_lines(self) -> list[str]:
        """Formatted alerts not shown yet; empty while the store cannot be read (starting)."""
        try:
            store = open_store(self.settings)
        except StoreError:  # the worker is starting: nothing to read yet
            return []
        try:
            if "alerts" not in present_tables(store):
                return []
            alerts = list_alerts(store)
        except StoreError:
            return []
        finally:
            store.close()
        lines = []
        for alert in reversed(alerts):  # oldest first
            key = (str(alert["alert_id"]), str(alert["state"]))
            if key not in self._seen:
                self._seen.add(key)
                lines.append("ALERT " + format_alert(alert))
        return lines


def stored_report(settings: Settings) -> dict[str, Any]:
    """Counts per table (FINAL), decisions per scorer and outcome, and the alerts."""
    store = open_store(settings)
    try:
        present = present_tables(store)
        tables = table_counts(store, present)
        decisions = decision_counts(store) if "decisions" in present else {}
        alerts = list_alerts(store) if "alerts" in present else []
        return {"tables": tables, "decisions": decisions, "alerts": alerts}
    finally:
        store.close()


def render_report(report: dict[str, Any], evalset: str = "") -> str:
    """The demo's closing summary; ``evalset``: what its export made, shown last but one."""
    lines = ["", "stored (rows, FINAL):"]
    lines += [f"  {table:<14} {n}" for table, n in report["tables"].items()]
    lines.append("decisions by scorer:")
    for scorer, counts in report["decisions"].items():
        lines.append(f"  {scorer:<10} " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    if not report["decisions"]:
        lines.append("  (no model scorers enabled)")
    lines.append(f"alerts ({len(report['alerts'])}, latest state of each):")
    lines += [f"  {format_alert(alert)}" for alert in report["alerts"]] or ["  none"]
    if evalset:
        lines.append(evalset)
    lines.append(f"demo finished in {report['elapsed_s']} s")
    return "\n".join(lines)
