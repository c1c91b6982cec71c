"""Alert queries against a real embedded store, for shapes the default rules do not use."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from monitor.alerts.metrics import segment_key
from monitor.checks import Heuristics
from monitor.config import HeuristicsSettings
from monitor.store.embedded import EmbeddedStore
from monitor.store.queries import alerts as q
from tests.fixtures import rows as fixture_rows
from tests.test_store_backends import NOW, make_events


def test_slow_requests_split_by_two_dimensions(tmp_path: Path) -> None:
    """A latency limit per segment of two dimensions: the SQL's segment key must equal
    the one the alert code computes, or every segment falls back to the default limit."""
    store = EmbeddedStore(tmp_path / "data", "vigil", 30)
    try:
        store.migrate()
        events = make_events(40)
        heuristics = Heuristics(HeuristicsSettings())
        store.insert("checks", [fixture_rows.check_row(e, heuristics.check(e)) for e in events])
        dims = ["route", "model_version"]
        first = events[0]
        key = segment_key({"route": first.route, "model_version": first.model_version})
        lo = min(e.ts for e in events) - timedelta(minutes=1)
        hi = max(e.ts for e in events) + timedelta(minutes=1)
        # A limit of -1 ms for that one segment: each of its requests counts as slow;
        # an infinite default for every other segment: none of theirs does.
        rows = q.slow_request_minutes(store, dims, lo, hi, [key], [-1.0], float("inf"))
        slow = sum(int(r["x"]) for r in rows)
        expected = sum(
            1
            for e in events
            if (e.route, e.model_version) == (first.route, first.model_version)
            and e.response.latency_ms is not None
        )
        assert expected > 0
        assert slow == expected
    finally:
        store.close()
