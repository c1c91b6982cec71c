"""Event-time timers: jobs (drift, alerts, rollups) that run per period of event time.

Time is the watermark, the largest event time stored so far, never the wall clock: the
same events give the same firings in `vigil replay` and in the live worker, whatever the
batch size or the speed of the machine.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

TimerFn = Callable[[datetime], Awaitable[None]]

log = logging.getLogger("vigil.timers")

#: How many missed periods one advance fires at most: a gap of years in event time (a
#: stray timestamp) must not run a job a million times.
_MAX_CATCH_UP = 1000


@dataclass
class _Timer:
    name: str
    every_s: float
    fn: TimerFn
    last_slot: int | None = None


class EventTimers:
    """The watermark and the timers it drives.

    ``fired`` counts firings per timer name (the run summary's counter). ``before_fire``,
    when given, runs before a timer fires: replay drains the scorer queues there, so a
    job over history sees every score of its period, however slow the models are.
    ``errors`` counts failed runs per timer name (`Health.timer_errors`): a timer that
    raises is logged and counted, and ingestion and the other timers go on; its slot
    still advances, so the next period runs it again.
    """

    def __init__(
        self,
        fired: Counter[str],
        before_fire: Callable[[], Awaitable[None]] | None = None,
        errors: Counter[str] | None = None,
    ) -> None:
        self.watermark: datetime | None = None
        # The first event time stored: timers count their periods from here, so a first
        # batch spanning several periods fires each of them (whatever the batch size).
        self.origin: datetime | None = None
        self._timers: list[_Timer] = []
        self._fired = fired
        self._before_fire = before_fire
        self.errors: Counter[str] = Counter() if errors is None else errors

    def add(self, name: str, every_s: float, fn: TimerFn) -> None:
        """Run ``fn(as_of)`` each time the watermark crosses a multiple of ``every_s``."""
        self._timers.append(_Timer(name, every_s, fn))

    def get(self, name: str) -> TimerFn | None:
        """The function of the timer called ``name``, if one was added."""
        return next((t.fn for t in self._timers if t.name == name), None)

    async def stored(self, earliest: datetime | None, latest: datetime | None) -> None:
        """A batch with these event times is stored: advance the watermark, fire what is due."""
        if self.origin is None:
            self.origin = earliest
        if latest is None or (self.watermark is not None and latest <= self.watermark):
            return
        self.watermark = latest
        await self.fire_due()

    async def fire_due(self, *, force: bool = False) -> None:
        """Fire every timer whose period boundary the watermark has crossed.

        ``force`` fires each timer once at the watermark (end of a replay), so the last
        partial period is evaluated too.
        """
        if self.watermark is None or not self._timers:
            return
        epoch = self.watermark.timestamp()
        for timer in self._timers:
            slot = math.floor(epoch / timer.every_s)
            if timer.last_slot is None:
                start = self.origin or self.watermark
                timer.last_slot = math.floor(start.timestamp() / timer.every_s)
            if slot <= timer.last_slot and not force:
                continue
            if self._before_fire is not None:
                await self._before_fire()
            first = max(timer.last_slot + 1, slot - _MAX_CATCH_UP)
            boundaries = [s * timer.every_s for s in range(first, slot + 1)]
            if force:
                boundaries.append(epoch)
            for boundary in boundaries:
                await self._run(timer, datetime.fromtimestamp(boundary, tz=UTC))
            timer.last_slot = slot

    async def _run(self, timer: _Timer, as_of: datetime) -> None:
        """One firing; an error is the timer's own, never the batch's (which is stored)."""
        try:
            await timer.fn(as_of)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors[timer.name] += 1
            log.error(
                "timer failed",
                extra={
                    "timer": timer.name,
                    "as_of": as_of.isoformat(),
                    "error": type(exc).__name__,
                    "errors": self.errors[timer.name],
                },
            )
            return
        self._fired[timer.name] += 1

    async def close(self) -> None:
        """Release what the timers hold (webhook notifiers keep HTTP clients)."""
        for timer in self._timers:
            close = getattr(timer.fn, "close", None)
            if callable(close):
                await close()
