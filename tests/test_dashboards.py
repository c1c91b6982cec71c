"""Grafana ClickHouse macros expand as the datasource plugin expands them, and the
expanded SQL runs on the embedded store."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboards.macros import TimeRange, expand, unexpanded
from monitor.store.embedded import EmbeddedStore

_RANGE = TimeRange(
    datetime(2026, 11, 22, 8, 0, tzinfo=UTC), datetime(2026, 11, 22, 9, 0, tzinfo=UTC), 300
)


def test_macros_expand_to_the_plugins_forms() -> None:
    sql = expand(
        "SELECT $__timeInterval(ts) AS t FROM e WHERE $__timeFilter(ts) AND "
        "$__timeFilter_ms(ts) AND x < $__toTime AND y >= $__fromTime_ms GROUP BY $__interval_s",
        _RANGE,
    )
    assert "toStartOfInterval(toDateTime(ts), INTERVAL 300 second)" in sql
    assert "ts >= toDateTime(1795334400) AND ts <= toDateTime(1795338000)" in sql
    assert "ts >= fromUnixTimestamp64Milli(1795334400000)" in sql
    assert "x < toDateTime(1795338000)" in sql
    assert "y >= fromUnixTimestamp64Milli(1795334400000)" in sql
    assert sql.endswith("GROUP BY 300")
    assert unexpanded(sql) == []
    assert unexpanded("SELECT $__unknown(x)") == ["$__unknown"]


def test_expanded_sql_runs_on_the_store(embedded_store: EmbeddedStore) -> None:
    db = embedded_store.database
    embedded_store.insert(
        "rollup_minute",
        [{"minute": "2026-11-22T08:10:00Z", "model": "m", "model_version": "v1",
          "route": "r", "events": 7, "failed_events": 1, "failed_checks": {},
          "prompt_tokens": 0, "completion_tokens": 0, "feedback": 0,
          "negative_feedback": 0, "positive_feedback": 0,
          "refreshed_at": "2026-11-22T08:11:00Z"}],
    )  # fmt: skip
    sql = expand(
        f"SELECT $__timeInterval(minute) AS time, sum(events) AS events "
        f"FROM {db}.rollup_minute FINAL WHERE $__timeFilter(minute) GROUP BY time ORDER BY time",
        _RANGE,
    )
    rows = embedded_store.query(sql)
    assert [int(r["events"]) for r in rows] == [7]
    assert set(rows[0]) == {"time", "events"}
