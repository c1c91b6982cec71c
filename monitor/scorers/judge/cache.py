"""The verdict cache: (request, response, shadow, judge identity) -> verdict, never paid twice.

Three layers, checked in order:
1. memory (bounded LRU) - duplicates within a run;
2. in flight - a duplicate that arrives while the first copy is still being judged waits
   for that verdict instead of calling again;
3. the store - table ``judgments`` holds every fresh verdict with its ``cache_key``, so a
   redelivered event after a restart is answered from there. The cache does not know
   the store: it is given a `VerdictLookup` (``monitor.assembly`` builds one over the
   pipeline's store) and turns the rows that returns into verdicts.

The key hashes content, not event_id: the same answer to the same request under another
id is the same question to the judge. The judge identity (model, rubric version, prompt
template hash, output mode) is part of the key, so changing any of them judges afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import StoreError
from monitor.events import Event, messages_json

log = logging.getLogger("vigil.judge")

#: Cache keys -> the stored rows of those verdicts found (``cache_key``, ``judge_model``,
#: ``cascade``, ``scores``, ``reasons``, ``pair_winner``, ``pair_orders``,
#: ``pair_reasons``). Blocking; raises `StoreError` when the store fails.
VerdictLookup = Callable[[list[str]], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class CachedVerdict:
    """What a verdict needs to be re-issued for another delivery of the same content."""

    judge_model: str
    cascade: str
    scores: dict[str, float]
    reasons: dict[str, str]
    pair_winner: str = ""
    pair_orders: tuple[str, ...] = ()
    pair_reasons: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def cache_key(identity: str, event: Event, pairwise: bool) -> str:
    h = hashlib.sha256()
    for part in (
        identity,
        messages_json(event.request),
        event.response.content,
        event.shadow.content if (pairwise and event.shadow is not None) else "",
    ):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


class VerdictCache:
    """Memory LRU + in-flight futures + stored verdicts (when given a lookup)."""

    def __init__(self, max_items: int = 10_000, lookup: VerdictLookup | None = None) -> None:
        self.max_items = max_items
        self._lookup = lookup
        self._memory: OrderedDict[str, CachedVerdict] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[CachedVerdict]] = {}
        self.store_errors = 0

    def get(self, key: str) -> CachedVerdict | None:
        found = self._memory.get(key)
        if found is not None:
            self._memory.move_to_end(key)
        return found

    def put(self, key: str, verdict: CachedVerdict) -> None:
        self._memory[key] = verdict
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)

    def inflight(self, key: str) -> asyncio.Future[CachedVerdict] | None:
        return self._inflight.get(key)

    def begin(self, key: str) -> asyncio.Future[CachedVerdict]:
        future: asyncio.Future[CachedVerdict] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        return future

    def finish(self, key: str, verdict: CachedVerdict | None, error: BaseException | None) -> None:
        future = self._inflight.pop(key, None)
        if verdict is not None:
            self.put(key, verdict)
        if future is None or future.done():
            return
        if isinstance(error, asyncio.CancelledError):
            future.cancel()
        elif error is not None:
            future.set_exception(error)
            # Waiters re-raise it; with none, this keeps asyncio from warning about it.
            future.exception()
        elif verdict is not None:
            future.set_result(verdict)

    async def stored(self, keys: list[str]) -> dict[str, CachedVerdict]:
        """Verdicts stored earlier (e.g. before a restart) for ``keys``; misses are absent."""
        if self._lookup is None or not keys:
            return {}
        try:
            # Off the event loop: the lookup is a blocking store query.
            rows = await asyncio.to_thread(self._lookup, keys)
        except StoreError as exc:
            # A cache read failing must not stop judging; it can only cost a repeat call.
            self.store_errors += 1
            log.warning("judge cache lookup failed", extra={"error": str(exc)[:200]})
            return {}
        found: dict[str, CachedVerdict] = {}
        for row in rows:
            verdict = _verdict_from_row(row)
            found[str(row["cache_key"])] = verdict
            self.put(str(row["cache_key"]), verdict)
        return found


def _verdict_from_row(row: dict[str, Any]) -> CachedVerdict:
    return CachedVerdict(
        judge_model=str(row["judge_model"]),
        cascade=str(row["cascade"]),
        scores={str(k): float(v) for k, v in dict(row["scores"]).items()},
        reasons={str(k): str(v) for k, v in dict(row["reasons"]).items()},
        pair_winner=str(row["pair_winner"]),
        pair_orders=tuple(str(v) for v in row["pair_orders"]),
        pair_reasons=tuple(str(v) for v in row["pair_reasons"]),
    )
