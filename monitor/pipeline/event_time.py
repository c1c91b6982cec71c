"""Which event times the pipeline accepts, so that one stray timestamp cannot move time.

Event time is the watermark that fires the event-time jobs (`monitor.pipeline.timers`)
and the clock that refills the sampler's budgets (`monitor.pipeline.sampling`). One event
stamped in year 2999 would fire every job up to its catch-up limit, then freeze them
(nothing after it is later) and leave the budgets with nothing to refill; one stamped in
1999 at the start of a stream would become the timers' origin. So every parsed event is
checked, in stream order, with ``t`` its ``ts`` in Unix seconds (settings ``events``):

1. **past**: ``t >= min(P, M) - max_past_s``;
2. **ahead**: ``t <= max(P, M) + max_ahead_s``;
3. **clock**, live only: ``t <= now + max_future_s``, ``now`` the worker's clock when
   the batch is prepared (producers' clocks may be a little ahead).

``P``, the stream's progress, is the latest event time accepted so far (kept across
batches; at the start of a stream, ``M``). ``M`` is the lower median of the event times
of the event's batch, a batch of fewer than 3 events padded with the event times just
before it. So the stream follows itself (a quiet gap, a backlog caught up) as soon as
most of a batch agrees, while stray events, fewer than half of their batch, or one
alone, cannot move it: they are out of range.

An event out of range becomes a dead letter (reason ``ts_out_of_range``, a detail naming
the bound and the setting) before anything else sees it: not the checks, the sampler,
the rows, the watermark, the timers' origin.

Replay and live decide the same: rules 1 and 2 depend only on the events, in order,
and on their batch only through ``M``, which matters only where the stream jumps by more
than a bound (or near a bound, by the batch's own span); the generous defaults make that
rare. They differ by rule 3: live rejects an event ahead of the worker's clock that a
later replay accepts (within rule 2). A worker restart starts a new stream (the progress
lives in memory, like the watermark). What no rule can tell: a batch in which half or
more events are stray, which looks like the stream moving (the first event of a stream,
alone in its batch, is its start); live, rule 3 still bounds the future. After a quiet
gap longer than ``max_ahead_s``, the first event, when alone in its batch, is out of
range (the second confirms the jump).

Cost: one ``timestamp()`` per event (the pipeline needs it anyway), and ``min``/``max``
over the batch; the per-event loop runs only when a batch is not plainly in range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from monitor.config import EventSettings
from monitor.events import Event
from monitor.times import iso

#: The dead-letter reason of an event outside the bounds (one of `REJECT_REASONS`).
OUT_OF_RANGE = "ts_out_of_range"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The fewest event times a median is taken over (a smaller batch is padded with the
#: ones just before it): so one event alone can never move the stream, two can.
_WINDOW = 3


class EventTimeBounds:
    """The rule above, with the stream's progress it keeps from batch to batch.

    ``clock`` (Unix seconds; ``time.time`` in the worker) enables rule 3; None in replay.
    """

    def __init__(self, settings: EventSettings, clock: Callable[[], float] | None) -> None:
        self.max_past_s = settings.max_past_s
        self.max_ahead_s = settings.max_ahead_s
        self.max_future_s = settings.max_future_s
        self._clock = clock
        self.progress: float | None = None
        """The latest event time accepted so far (Unix seconds), None before the first."""
        self._recent: list[float] = []  # the last event times before this batch

    def check(self, events: Sequence[Event]) -> tuple[list[float], list[tuple[int, str]]]:
        """The event times of ``events`` (Unix seconds, in order) and, for each event out
        of range, its index and the detail for its dead letter. Advances the progress."""
        times = [event.ts.timestamp() for event in events]
        if not times:
            return times, []
        limit = self._clock() + self.max_future_s if self._clock is not None else math.inf
        low, high = min(times), max(times)
        progress = self.progress
        self._recent = (self._recent + times[-_WINDOW:])[-_WINDOW:]
        if (
            progress is not None
            and high <= limit
            and high <= progress + self.max_ahead_s
            and low >= progress - self.max_past_s
            and low >= high - self.max_past_s
        ):
            # Plainly in range: the per-event rule would accept every event.
            self.progress = max(progress, high)
            return times, []
        return times, self._one_by_one(events, times, limit)

    def _one_by_one(
        self, events: Sequence[Event], times: list[float], limit: float
    ) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        progress = self.progress
        median = self._median(times) if progress is None else None
        for i, t in enumerate(times):
            latest = progress if progress is not None else median
            assert latest is not None
            if t < latest - self.max_past_s:
                if median is None:
                    median = self._median(times)
                reference = min(latest, median)
                if t < reference - self.max_past_s:
                    out.append((i, self._detail(events[i], "behind", reference, "max_past_s")))
                    continue
            if t > limit:
                clock = limit - self.max_future_s
                out.append((i, self._detail(events[i], "clock", clock, "max_future_s")))
                continue
            if t > latest + self.max_ahead_s:
                if median is None:
                    median = self._median(times)
                reference = max(latest, median)
                if t > reference + self.max_ahead_s:
                    out.append((i, self._detail(events[i], "ahead", reference, "max_ahead_s")))
                    continue
            if progress is None or t > progress:
                progress = t
        self.progress = progress
        return out

    def _median(self, times: list[float]) -> float:
        """The lower median of the batch's event times, the batch padded with the event
        times just before it to at least `_WINDOW`: one event cannot carry it."""
        window = times if len(times) >= _WINDOW else self._recent
        return sorted(window)[(len(window) - 1) // 2]

    def _detail(self, event: Event, side: str, reference: float, setting: str) -> str:
        bound: float = getattr(self, setting)
        where = {
            "behind": "behind the stream's event time",
            "ahead": "ahead of the stream's event time",
            "clock": "ahead of the worker's clock",
        }[side]
        return (
            f"ts {iso(event.ts)} is more than {bound:g} s (events.{setting}) {where} "
            f"{iso(_EPOCH + timedelta(seconds=reference))}"
        )
