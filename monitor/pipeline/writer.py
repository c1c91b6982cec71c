"""Durable writes: every table a batch, a stage or a timer produces, into the store.

Ingest batches and scorer stages write through one `StoreWriter`, one write at a time.
(The event-time jobs write on their own; a failed run there is a timer error, counted by
`monitor.pipeline.timers`, and the next period runs again.) A failed write is retried
with a capped exponential backoff:

- live (``retry_forever``, the worker), for as long as the store is down. Everything
  behind the write waits: the driver stops fetching (it waits for the batch in flight),
  the batch's offsets stay uncommitted, scorer stages keep their scores in memory, and
  `Health` says so (``/readyz`` answers 503) until the store takes the rows again.
  Rows already inserted by a partly failed attempt are written again on the next one;
  the tables' idempotent keys collapse them.
- otherwise (`vigil replay`, one-shot commands), ``store.insert_retries`` times, then
  the `StoreError` is raised: a run over history reports a broken store instead of
  hanging on it.

`stop_retrying` (shutdown) makes a write being retried give up at once: its batch is
not committed, so Kafka redelivers it after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from monitor.config import StoreSettings
from monitor.errors import StoreError
from monitor.logs import mask_urls
from monitor.pipeline.health import Health
from monitor.pipeline.summary import Summary
from monitor.store.base import Rows, Store
from monitor.store.schema import INGEST_TABLE

log = logging.getLogger("vigil.pipeline")

#: First retry delay; doubles per attempt up to ``store.retry_max_delay_s``.
_FIRST_DELAY_S = 0.1


class StoreWriter:
    """Writes {table: rows} durably, one write at a time, retrying as described above."""

    def __init__(
        self,
        store: Store,
        settings: StoreSettings,
        health: Health,
        summary: Summary,
        *,
        retry_forever: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings
        self.health = health
        self.summary = summary
        self.retry_forever = retry_forever
        self._lock = asyncio.Lock()
        self._give_up = asyncio.Event()

    async def write(self, tables: Mapping[str, Rows]) -> None:
        """Insert every non-empty table; raise `StoreError` only when giving up."""
        todo = {name: rows for name, rows in tables.items() if rows}
        if not todo:
            return
        async with self._lock:
            attempt = 0
            while True:
                try:
                    await asyncio.to_thread(self._insert_all, todo)
                    break
                except StoreError as exc:
                    attempt += 1
                    gave_up = self._give_up.is_set() or (
                        not self.retry_forever and attempt > self.settings.insert_retries
                    )
                    self._failed(exc, attempt, gave_up)
                    if gave_up:
                        raise
                    delay = min(
                        self.settings.retry_max_delay_s, _FIRST_DELAY_S * 2 ** min(attempt, 30)
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._give_up.wait(), delay)
            if not self.health.store_ok:
                since = self.health.store_failing_since or time.time()
                log.warning(
                    "store writes recovered; ingest resumes",
                    extra={"failed_for_s": round(time.time() - since, 1), "attempts": attempt},
                )
                self.health.store_recovered()

    def stop_retrying(self) -> None:
        """A write being retried (and every later failing one) gives up at once."""
        self._give_up.set()

    def _failed(self, exc: StoreError, attempt: int, gave_up: bool) -> None:
        lines = str(exc).strip().splitlines()
        error = mask_urls(lines[0][:300]) if lines else type(exc).__name__
        first = self.health.store_ok
        self.health.store_failed(error)
        if gave_up:
            log.error("store write failed; giving up", extra={"attempts": attempt, "error": error})
        elif first or attempt <= 5 or attempt % 10 == 0:
            # Loud at first, then every tenth attempt: an outage of hours must not flood
            # the log, and must not go quiet either.
            log.warning(
                "store write failed; ingest paused, retrying"
                + (" until the store is back" if self.retry_forever else ""),
                extra={"attempt": attempt, "error": error},
            )

    def _insert_all(self, todo: dict[str, Rows]) -> None:
        started = time.perf_counter()
        # Events go last: a row in `events` means its decisions and incidents are there too.
        for name in sorted(todo, key=lambda t: t == INGEST_TABLE):
            self.store.insert(name, todo[name])
        self.summary.write_s += time.perf_counter() - started
