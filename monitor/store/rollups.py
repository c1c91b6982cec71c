"""Per-minute rollups for dashboards: one row per (minute, model, model_version, route).

`refresh_rollups` recomputes closed minutes (strictly before ``until``'s minute) from
``FINAL`` data, so a redelivered batch never double counts; the table is a
ReplacingMergeTree keyed by minute and segment whose version is the refresh time, so
recomputing a minute replaces it (read with ``FINAL``). Each refresh covers the last
`LATE_WINDOW` too: events that arrive out of order and feedback that arrives late within
that window are folded into minutes already rolled up. Older history is rebuilt by
passing ``since`` explicitly.

What a row holds: events; events that failed any heuristic check and the count per
check (``failed_checks['pii']``...); latency p50/p95 (exact quantiles, ClickHouse's
``quantileExact``) and mean; token sums; feedback received, negative and positive.
Feedback counts by the event's minute and segment, whenever it arrived.

The timer (`rollup_timer`, registered in ``monitor.assembly.TIMERS``) runs on event time,
so `vigil replay` and the live worker end with the same rollups (see `RollupTimer`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config import Settings
from monitor.store.base import Store

log = logging.getLogger("vigil.store.rollups")

TABLE = "rollup_minute"
#: How far back each refresh recomputes, for out-of-order events and late feedback.
LATE_WINDOW = timedelta(minutes=15)
#: Event-time period of the rollup timer.
EVERY_S = 60.0
#: A burst of firings (a replay) refreshes once per this much event time...
CATCH_UP = timedelta(minutes=60)
#: ...or once this many wall-clock seconds passed since the last refresh (live: each firing).
WALL_INTERVAL_S = 20.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The table itself is in monitor.store.schema (created by `migrate`); its columns, in order:
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


def closed_until(as_of: datetime) -> datetime:
    """The start of ``as_of``'s minute: every minute before it is closed."""
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    return as_of.astimezone(UTC).replace(second=0, microsecond=0)


def refresh_rollups(
    store: Store, until: datetime, since: datetime | None = None
) -> tuple[datetime, datetime]:
    """Recompute the rollups of closed minutes in ``[since, until)``; idempotent.

    ``until`` is rounded down to its minute; ``since`` defaults to `LATE_WINDOW` before
    it. Returns the window recomputed. Raises `StoreError` if the store fails.
    """
    end = closed_until(until)
    start = closed_until(since) if since is not None else end - LATE_WINDOW
    if start >= end:
        return start, end
    sql = _REFRESH.format(db=store.database, columns=_COLUMNS)
    store.command(sql, {"since": start, "until": end})
    log.debug("rollups refreshed", extra={"since": start.isoformat(), "until": end.isoformat()})
    return start, end


class RollupTimer:
    """The event-time timer behind `rollup_timer`: refreshes the minutes that closed.

    Live, firings come a wall-clock minute apart and each one refreshes. A replay fires
    hundreds of boundaries back to back; refreshing at each would cost a query per
    minute of history, so firings are coalesced: one runs when `CATCH_UP` of event time
    or `WALL_INTERVAL_S` of wall time has passed since the last, and the window reaches
    back to where the last one ended (minus `LATE_WINDOW`). The final firing of a replay
    (at the watermark, off the minute grid) always runs, so a finished replay and the
    live worker leave the same rollups. Rollups are a dashboard cache: alert rules and
    drift never read them, so coalescing cannot change what they decide.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.last_until: datetime | None = None
        self._last_wall = -math.inf

    async def __call__(self, as_of: datetime) -> None:
        until = closed_until(as_of)
        on_grid = as_of.timestamp() % EVERY_S == 0
        if (
            on_grid
            and self.last_until is not None
            and until - self.last_until < CATCH_UP
            and time.monotonic() - self._last_wall < WALL_INTERVAL_S
        ):
            return
        # The first refresh of a process covers all history (replays start anywhere).
        since = self.last_until - LATE_WINDOW if self.last_until is not None else _EPOCH
        await asyncio.to_thread(refresh_rollups, self.store, until, since)
        self.last_until = max(until, self.last_until or until)
        self._last_wall = time.monotonic()


def rollup_timer(settings: Settings, store: Store) -> tuple[float, RollupTimer]:
    """The event-time timer (see `RollupTimer`): period `EVERY_S`, a fresh state."""
    return EVERY_S, RollupTimer(store)


def read_rollups(store: Store, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The rollup rows of minutes in ``[since, until)``, deduplicated, in key order."""
    columns = _COLUMNS.replace(", refreshed_at", "")
    sql = (
        f"SELECT {columns} FROM {store.database}.{TABLE} FINAL"
        " WHERE minute >= {since:DateTime} AND minute < {until:DateTime}"
        " ORDER BY minute, model, model_version, route"
    )
    return store.query(sql, {"since": since, "until": until})
