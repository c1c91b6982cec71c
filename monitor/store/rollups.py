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

from monitor.config import Settings
from monitor.store.base import Store
from monitor.store.queries import rollups as queries
from monitor.store.queries.rollups import TABLE, read_rollups

log = logging.getLogger("vigil.store.rollups")

__all__ = ["EVERY_S", "TABLE", "RollupTimer", "read_rollups", "refresh_rollups", "rollup_timer"]

#: How far back each refresh recomputes, for out-of-order events and late feedback.
LATE_WINDOW = timedelta(minutes=15)
#: Event-time period of the rollup timer.
EVERY_S = 60.0
#: A burst of firings (a replay) refreshes once per this much event time...
CATCH_UP = timedelta(minutes=60)
#: ...or once this many wall-clock seconds passed since the last refresh (live: each firing).
WALL_INTERVAL_S = 20.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
    queries.refresh_minutes(store, start, end)
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
