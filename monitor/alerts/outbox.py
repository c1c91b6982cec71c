"""The notification outbox: alert notices are stored first and delivered in the background.

A paging transition is written to table ``alerts`` with ``notified = QUEUED`` by the
evaluator, which then returns: ingestion and the Kafka commit never wait on a webhook.
This outbox's task sends each queued notice through every channel (with the notifiers'
own retries), and stores the transition again as SENT once every channel took it. A
channel that still refuses is tried again every ``alerts.notify_retry_every_s``, and only
that channel, until ``alerts.notify_give_up_minutes``; then the row is stored as GAVE_UP
and an error is logged.

Exactly once per transition: a notice is sent only from QUEUED, and SENT is stored right
after. A process that stops with notices queued leaves them in the table, and the next
one sends them (``recover``). Only a crash between a channel's answer and the SENT row
can repeat a notice; receivers can tell by ``alert_id`` and ``state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.notifiers import Notifier, deliver
from monitor.store.base import Store
from monitor.store.queries import alerts as q
from monitor.times import now_iso

log = logging.getLogger("vigil.alerts")


@dataclass
class _Item:
    row: dict[str, Any]
    """The stored alert row (every column), to store again with its new ``notified``."""
    notice: dict[str, Any]
    channels: set[str]
    """The channels that have not taken this notice yet."""
    first_try: float = field(default_factory=time.monotonic)


@dataclass
class OutboxTiming:
    """The outbox's retry schedule (from `AlertSettings`)."""

    retries: int
    backoff_s: float
    retry_every_s: float
    give_up_s: float
    drain_s: float


class Outbox:
    """Queued alert notices and the task that delivers them."""

    def __init__(
        self,
        store: Store,
        notifiers: Sequence[Notifier],
        timing: OutboxTiming,
        sent: deque[dict[str, Any]],
    ) -> None:
        self.store = store
        self.notifiers = list(notifiers)
        self.timing = timing
        self.sent = sent
        self.given_up = 0
        """Notices stored as given up by this process."""
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._unfinished = 0
        """Notices queued or being sent now (not counting those waiting for a retry)."""
        self._waiting: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._recovered = False

    @property
    def pending(self) -> int:
        """Notices not delivered yet (queued or waiting for a retry)."""
        return self._unfinished + len(self._waiting)

    def put(self, rows: Sequence[dict[str, Any]]) -> None:
        """Deliver the notices of these rows, stored QUEUED, in the background."""
        for row in rows:
            self._enqueue(row, notice_from_row(row))

    async def recover(self) -> None:
        """Once per process, before it stores any notice of its own: queue the notices an
        earlier process left queued in the store."""
        if self._recovered:
            return
        self._recovered = True
        left = await asyncio.to_thread(q.queued_notices, self.store)
        if left:
            log.warning("sending alert notices left queued", extra={"notices": len(left)})
        for row in left:
            self._enqueue(row, notice_from_row(row))

    def _enqueue(self, row: dict[str, Any], notice: dict[str, Any]) -> None:
        if not self.notifiers:
            # Nothing to send through: the transition is done with its notice.
            self._mark_soon(row, q.NOTICE_SENT)
            return
        self._push(_Item(row, notice, {n.name for n in self.notifiers}))

    def _push(self, item: _Item) -> None:
        self._unfinished += 1
        self._queue.put_nowait(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="vigil-outbox")

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._attempt(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad notice must not stop the others
                log.error("alert notice failed", extra={"error": type(exc).__name__})
            finally:
                self._unfinished -= 1

    async def _attempt(self, item: _Item) -> None:
        channels = [n for n in self.notifiers if n.name in item.channels]
        t = self.timing
        results = await deliver(channels, item.notice, retries=t.retries, backoff_s=t.backoff_s)
        item.channels -= {name for name, ok in results.items() if ok}
        row = item.row
        if not item.channels:
            self.sent.append(item.notice)
            log.info(
                "alert",
                extra={
                    "rule": row["rule"],
                    "segment": row["segment_key"],
                    "state": row["state"],
                    "alert_id": row["alert_id"],
                },
            )
            await self._mark(row, q.NOTICE_SENT)
        elif time.monotonic() - item.first_try >= t.give_up_s:
            self.given_up += 1
            log.error(
                "alert notice given up",
                extra={"alert_id": row["alert_id"], "channels": sorted(item.channels)},
            )
            await self._mark(row, q.NOTICE_GAVE_UP)
        else:
            self._track(self._later(item))

    async def _later(self, item: _Item) -> None:
        await asyncio.sleep(self.timing.retry_every_s)
        self._push(item)

    async def _mark(self, row: dict[str, Any], status: int) -> None:
        # The same key with a later created_at: the ReplacingMergeTree keeps this version.
        stored = {**row, "notified": status, "created_at": now_iso()}
        try:
            await asyncio.to_thread(self.store.insert, "alerts", [stored])
        except Exception as exc:  # stays QUEUED in the store: the next start resends it
            log.warning(
                "could not store an alert notice's outcome",
                extra={"alert_id": row["alert_id"], "error": str(exc)[:200]},
            )

    def _mark_soon(self, row: dict[str, Any], status: int) -> None:
        self._track(self._mark(row, status))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task counted in `pending` until it ends (drain waits on it)."""
        task = asyncio.create_task(work)
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def drain(self) -> int:
        """Wait up to ``drain_s`` for the notices queued now; returns how many are left."""
        deadline = time.monotonic() + self.timing.drain_s
        # A short poll: a drain happens once, at the end, and waits on the network anyway.
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.pending

    async def close(self) -> None:
        """Drain, then stop; notices still queued stay so in the store for the next start."""
        left = await self.drain()
        if left:
            log.warning(
                "alert notices left queued; the next worker or replay sends them",
                extra={"notices": left},
            )
        tasks = [*self._waiting, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def notice_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The notice notifiers receive: the alert row, details parsed, internals dropped."""
    notice = {
        k: v
        for k, v in row.items()
        if not k.startswith("_") and k not in ("created_at", "notified")
    }
    if isinstance(notice.get("details"), str):
        with contextlib.suppress(orjson.JSONDecodeError):
            notice["details"] = orjson.loads(notice["details"])
    return notice
