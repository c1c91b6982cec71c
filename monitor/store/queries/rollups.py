"""The per-minute rollups' SQL: recomputing closed minutes, and reading them back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.store.base import Store

TABLE = "rollup_minute"

# The table itself is in monitor.store.tables (created by `migrate`); its columns, in order:
_COLUMNS = (
    "minute, model, model_version, route, events, failed_events, failed_checks, "
    "latency_p50_ms, latency_p95_ms, latency_avg_ms, prompt_tokens, completion_tokens, "
    "feedback, negative_feedback, positive_feedback, refreshed_at"
)

_REFRESH = """
INSERT INTO {db}.rollup_minute ({columns})
SELECT
    toStartOfMinute(e.ts) AS minute,
    e.model AS model,
    e.model_version AS model_version,
    e.route AS route,
    count() AS events,
    countIf(notEmpty(c.failed)) AS failed_events,
    CAST(sumMap(c.failed, arrayMap(x -> toUInt64(1), c.failed)), 'Map(String, UInt64)'),
    quantileExact(0.5)(e.latency_ms),
    quantileExact(0.95)(e.latency_ms),
    avg(e.latency_ms),
    sum(ifNull(e.prompt_tokens, 0)),
    sum(ifNull(e.completion_tokens, 0)),
    sum(f.has_feedback),
    countIf(f.has_feedback = 1 AND f.rating < 0),
    countIf(f.has_feedback = 1 AND f.rating > 0),
    now64(3, 'UTC')
FROM (
    SELECT event_id, ts, model, model_version, route, latency_ms, prompt_tokens, completion_tokens
    FROM {db}.events FINAL
    WHERE ts >= {{since:DateTime64(3)}} AND ts < {{until:DateTime64(3)}}
) AS e
LEFT JOIN (
    -- one row per event: the greatest checks_version wins if an event was re-checked
    SELECT event_id, argMax(failed, checks_version) AS failed
    FROM {db}.checks FINAL
    WHERE ts >= {{since:DateTime64(3)}} AND ts < {{until:DateTime64(3)}}
    GROUP BY event_id
) AS c ON c.event_id = e.event_id
LEFT JOIN (
    -- late feedback carries its own time, so match by event, not by time
    SELECT event_id, argMax(rating, received_at) AS rating, toUInt8(1) AS has_feedback
    FROM {db}.feedback FINAL
    WHERE event_id IN (
        SELECT event_id FROM {db}.events
        WHERE ts >= {{since:DateTime64(3)}} AND ts < {{until:DateTime64(3)}}
    )
    GROUP BY event_id
) AS f ON f.event_id = e.event_id
GROUP BY minute, model, model_version, route
"""



def refresh_minutes(store: Store, start: datetime, end: datetime) -> None:
    """Recompute the rollup rows of the minutes in ``[start, end)`` from ``FINAL`` data."""
    sql = _REFRESH.format(db=store.database, columns=_COLUMNS)
    store.command(sql, {"since": start, "until": end})


def read_rollups(store: Store, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The rollup rows of minutes in ``[since, until)``, deduplicated, in key order."""
    columns = _COLUMNS.replace(", refreshed_at", "")
    sql = (
        f"SELECT {columns} FROM {store.database}.{TABLE} FINAL"
        " WHERE minute >= {since:DateTime} AND minute < {until:DateTime}"
        " ORDER BY minute, model, model_version, route"
    )
    return store.query(sql, {"since": since, "until": until})
