"""The one pipeline behind both `vigil replay` and the live worker.

For each batch of raw messages: parse and validate (bad ones become dead letters with a
reason), bound event time (`monitor.pipeline.event_time`: an event stamped too far from
the stream, or live ahead of the clock, is a dead letter too), run the heuristic checks,
decide per scorer (sampler), offer selected events to the async scorer stages, and write
everything in one durable step. A source acknowledges a batch (Kafka: commits its
offsets) only once it is stored (`monitor.pipeline.driver`).
Once stored, the batch advances event time: `monitor.pipeline.timers`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.checks import Heuristics
from monitor.config import Settings
from monitor.errors import EventError
from monitor.events import Event, parse_event, parse_feedback
from monitor.pipeline import rows as R
from monitor.pipeline.duplicates import NEW, SAME, DuplicateIds
from monitor.pipeline.duplicates import REASON as DUPLICATE_ID
from monitor.pipeline.event_time import OUT_OF_RANGE, EventTimeBounds
from monitor.pipeline.handover import Handover, Waiting
from monitor.pipeline.health import Health
from monitor.pipeline.redaction import StoreRedaction
from monitor.pipeline.requeue import Requeue
from monitor.pipeline.sampling import Decision, Sampler
from monitor.pipeline.source import DeadLetter, RawMessage
from monitor.pipeline.stages import Stage
from monitor.pipeline.summary import Summary
from monitor.pipeline.timers import EventTimers, TimerFn
from monitor.pipeline.writer import StoreWriter
from monitor.scorers.base import Job
from monitor.store.base import Encoded, Row, Rows, Store, encode_into
from monitor.store.schema import INGEST_TABLE
from monitor.times import now_iso

log = logging.getLogger("vigil.pipeline")


@dataclass
class Prepared:
    """A batch turned into table rows, ready to be written by `Pipeline.commit`."""

    now: str
    rejected: list[DeadLetter] = field(default_factory=list)
    # The rows written for (nearly) every event are encoded straight from tuples: `ingest`
    # (the store copies each into `events` and `checks`) and inline feedback. The rest are
    # ordinary dict rows.
    ingest: Encoded = field(default_factory=lambda: Encoded(R.INGEST_COLUMNS))
    feedback: Encoded = field(default_factory=lambda: Encoded(R.FEEDBACK_COLUMNS))
    decisions: list[Row] = field(default_factory=list)
    incidents: list[Row] = field(default_factory=list)
    dead_letters: list[Row] = field(default_factory=list)
    latest: datetime | None = None
    earliest: datetime | None = None
    # Replay: scorer jobs their stage's queue could not take yet (`Handover`).
    waiting: list[Waiting] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, Rows]:
        return {
            INGEST_TABLE: self.ingest,
            "feedback": self.feedback,
            "decisions": self.decisions,
            "incidents": self.incidents,
            "dead_letters": self.dead_letters,
        }


class Pipeline:
    """Parse, check, sample, score and store; shared by replay and the worker.

    ``clock`` (Unix seconds) bounds event time by the wall clock too: the worker passes
    ``time.time``; replay, which has no clock to compare history with, passes nothing.
    ``backpressure`` (default: ``drain_before_timers``, i.e. replay) waits for room in a
    full stage queue instead of recording ``over_budget`` / ``queue_full``.
    ``retry_forever`` (the live worker) retries a failed store write until it succeeds
    (see `write`); otherwise a write fails after ``store.insert_retries``.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        stages: Sequence[Stage] = (),
        *,
        drain_before_timers: bool = False,
        clock: Callable[[], float] | None = None,
        backpressure: bool | None = None,
        retry_forever: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bounds = EventTimeBounds(settings.events, clock)
        self.heuristics = Heuristics(settings.heuristics)
        self.redaction = StoreRedaction(settings.privacy.redact_pii)
        window = settings.events.duplicate_window
        self.duplicates = DuplicateIds(window) if window > 0 else None
        self.summary = Summary()
        self.health = Health()
        self.writer = StoreWriter(
            store, settings.store, self.health, self.summary, retry_forever=retry_forever
        )
        self.stages: dict[str, Stage] = {}
        self.sampler = Sampler(settings.sampling_settings(), [])
        self.requeue: Requeue | None = None
        self.set_stages(stages)
        before_fire = self.drain if drain_before_timers else None
        self.timers = EventTimers(self.summary.timers_fired, before_fire, self.health.timer_errors)
        self._started = time.perf_counter()
        wait = drain_before_timers if backpressure is None else backpressure
        self.handover = Handover() if wait else None

    @property
    def watermark(self) -> datetime | None:  # the largest event time stored so far
        return self.timers.watermark

    @property
    def origin(self) -> datetime | None:  # the first event time stored
        return self.timers.origin

    def set_stages(self, stages: Sequence[Stage]) -> None:
        """Plug in the scorer stages (before `start`); the sampler decides for exactly these."""
        self.stages = {stage.name: stage for stage in stages}
        self.sampler = Sampler(self.settings.sampling_settings(), list(self.stages))
        live = bool(self.stages) and self.writer.retry_forever and self.settings.requeue.enabled
        self.requeue = Requeue(self.settings.requeue, self.store, self.stages) if live else None

    async def start(self) -> None:
        await asyncio.to_thread(self.store.migrate)
        for stage in self.stages.values():
            await stage.start()
        # The hot path allocates many short-lived objects per event. Freezing what start-up
        # loaded (models, libraries) keeps full collections from re-walking it, and a larger
        # young generation collects per batch instead of every few events: measured ~3x on
        # event parsing with 20k events in flight.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 50)
        if self.requeue is not None:  # live: work a previous worker left undone
            self.requeue.start()
        self._started = time.perf_counter()

    async def drain(self) -> None:
        """Wait for every queued scorer job (end of a replay, clean shutdown)."""
        for stage in self.stages.values():
            await stage.drain()

    async def settle(self, timeout_s: float | None = None) -> bool:
        """End of input (replay) or clean shutdown (worker): finish queued scorer jobs, then
        run every event-time timer once at the watermark so the last, partial period is
        evaluated too. Returns False when the queues did not drain within ``timeout_s``
        (their decisions stay ``pending`` in the store: visible, not lost)."""
        drained = True
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            drained = False
        await self.fire_due_timers(force=True)
        return drained

    async def stop(self) -> None:
        if self.requeue is not None:
            await self.requeue.stop()
        for stage in self.stages.values():
            await stage.stop()
        await self.timers.close()

    def add_timer(self, name: str, every_s: float, fn: TimerFn) -> None:
        """Run ``fn(as_of)`` each time the watermark crosses a multiple of ``every_s``."""
        self.timers.add(name, every_s, fn)

    async def fire_due_timers(self, *, force: bool = False) -> None:
        """Fire the timers whose period the watermark crossed (``force``: each, once more)."""
        await self.timers.fire_due(force=force)

    def final_summary(self) -> Summary:
        self.summary.elapsed_s = time.perf_counter() - self._started
        self.summary.stages = {name: stage.stats() for name, stage in self.stages.items()}
        for name, stage in self.stages.items():
            # Pending decisions that a stage finished become scored / failed.
            counts = self.summary.decisions[name]
            for outcome, n in stage.outcomes.items():
                counts[outcome] += n
            counts["pending"] -= sum(stage.outcomes.values())
            if counts["pending"] <= 0:
                del counts["pending"]
        return self.summary

    async def process(self, batch: Sequence[RawMessage]) -> list[DeadLetter]:
        """Handle one batch of event messages; returns, once it is durably stored, the
        messages that did not parse or whose event time is out of range (already stored
        as dead letters)."""
        prepared = self.prepare(batch)
        await self.commit(prepared)
        return prepared.rejected

    def prepare(self, batch: Sequence[RawMessage]) -> Prepared:
        """The CPU half of `process`: parse, check, sample, offer to stages, build rows.

        Split from `commit` so `monitor.pipeline.driver` prepares batch N+1 while batch N
        is written (chDB and the HTTP client release the GIL); commits stay in order.
        """
        started = time.perf_counter()
        # A batch's events hold containers (message lists, metadata dicts) that live until
        # the batch is encoded, so each young-generation collection in between walks tens
        # of thousands of survivors (measured: 0.19 s of a 2.6 s, 100k-event replay). The
        # hot path makes no reference cycles; collecting once the batch is done is enough.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._prepare(batch)
        finally:
            if enabled:
                gc.enable()
            self.summary.prepare_s += time.perf_counter() - started

    def _prepare(self, batch: Sequence[RawMessage]) -> Prepared:
        now = now_iso()
        prepared = Prepared(now)
        # The every-event row is encoded inline (see `Encoded.add`): a method call per row
        # costs as much as encoding it.
        ingest_body = prepared.ingest.body
        decision_rows, incident_rows = prepared.decisions, prepared.incidents
        summary = self.summary
        summary.read += len(batch)
        latest = -math.inf  # event times as Unix seconds: cheaper to compare than datetimes
        earliest = math.inf
        decide = self.sampler.decide
        stages = self.stages
        handover = self.handover
        events = []
        messages = []  # the message of each parsed event
        for message in batch:
            try:
                if message.refused is not None:  # its input format could not decode it
                    raise EventError(*message.refused)
                events.append(parse_event(message.value))
                messages.append(message)
            except EventError as exc:
                summary.rejected[exc.reason] += 1
                _reject(message, exc, now, prepared.rejected, prepared.dead_letters)
        times, out_of_range = self.bounds.check(events)
        if out_of_range:
            events, times, messages = self._reject_out_of_range(
                events, times, messages, out_of_range, prepared
            )
        if self.duplicates is not None:
            events, times = self._skip_duplicates(events, times, messages, prepared)
        results = self.heuristics.check_many(events)
        # Checks ran on the raw text above; the rows get it redacted, the stages raw.
        stored = self.redaction.events(events)
        checked = zip(events, stored, times, results, strict=True)
        for event, kept, at, result in checked:
            failed = result.failed
            encode_into(R.ingest_values(kept, at, now, result), ingest_body, -1)
            ingest_body.append(10)
            if event.feedback is not None:
                prepared.feedback.add(R.inline_feedback_values(kept, at, now))
            for kind in result.pii_kinds:
                incident_rows.append(R.incident_row(event, "pii", kind, 1.0, "heuristics", now))
            for kind in result.jailbreak_kinds:
                incident_rows.append(
                    R.incident_row(event, "jailbreak", kind, 1.0, "heuristics", now)
                )
            for decision in decide(event, failed) if stages else ():
                if decision.decision == "pending":
                    job = Job(event, failed, decision.reason)
                    if handover is not None:  # replay: never refused, see `Handover`
                        handover.place(stages[decision.scorer], job, prepared.waiting)
                    elif not stages[decision.scorer].offer(job):
                        decision = Decision(decision.scorer, "over_budget", "queue_full")
                summary.decisions[decision.scorer][decision.decision] += 1
                decision_rows.append(R.decision_row(event, decision, now))
            if at > latest:
                latest = at
            if at < earliest:
                earliest = at
        prepared.ingest.count = len(events)
        if latest > -math.inf:
            prepared.latest = datetime.fromtimestamp(latest, tz=UTC)
            prepared.earliest = datetime.fromtimestamp(earliest, tz=UTC)
        return prepared

    def _reject_out_of_range(
        self,
        events: list[Event],
        times: list[float],
        messages: list[RawMessage],
        out: list[tuple[int, str]],
        prepared: Prepared,
    ) -> tuple[list[Event], list[float], list[RawMessage]]:
        """Dead-letter the events `EventTimeBounds.check` refused; the rest, their times
        and their messages."""
        for i, detail in out:
            self.summary.rejected[OUT_OF_RANGE] += 1
            error = EventError(OUT_OF_RANGE, detail)
            _reject(messages[i], error, prepared.now, prepared.rejected, prepared.dead_letters)
        refused = {i for i, _ in out}
        kept = [i for i in range(len(events)) if i not in refused]
        return [events[i] for i in kept], [times[i] for i in kept], [messages[i] for i in kept]

    def _skip_duplicates(
        self,
        events: list[Event],
        times: list[float],
        messages: list[RawMessage],
        prepared: Prepared,
    ) -> tuple[list[Event], list[float]]:
        """Apply the duplicate-id rule (`monitor.pipeline.duplicates`): redeliveries are
        skipped, conflicts dead-lettered; the events to process and their times."""
        assert self.duplicates is not None
        verdicts = list(
            self.duplicates.classify([e.event_id for e in events], [m.value for m in messages])
        )
        if not any(verdicts):
            return events, times
        kept_events, kept_times = [], []
        for event, at, message, verdict in zip(events, times, messages, verdicts, strict=True):
            if verdict == NEW:
                kept_events.append(event)
                kept_times.append(at)
            elif verdict == SAME:
                self.summary.duplicates += 1
            else:
                self.summary.rejected[DUPLICATE_ID] += 1
                error = EventError(
                    DUPLICATE_ID,
                    f"event_id {event.event_id[:200]!r} was already seen with different"
                    " content; the first one is kept",
                )
                _reject(message, error, prepared.now, prepared.rejected, prepared.dead_letters)
        return kept_events, kept_times

    async def commit(self, prepared: Prepared) -> None:
        """The I/O half of `process`: write durably, then advance event time and timers.

        Replay: jobs kept for full stage queues are handed over while the batch is
        written, and all of them before its timers run (they drain the queues first)."""
        if prepared.waiting and self.handover is not None:
            handing = asyncio.ensure_future(self.handover.hand_over(prepared.waiting))
            try:
                await self.write(prepared.tables)
            except BaseException:
                handing.cancel()
                await asyncio.wait({handing})
                raise
            await handing
        else:
            await self.write(prepared.tables)
        self.summary.stored += len(prepared.ingest)
        self.summary.feedback_stored += len(prepared.feedback)
        await self.timers.stored(prepared.earliest, prepared.latest)

    async def process_feedback(self, batch: Sequence[RawMessage]) -> list[DeadLetter]:
        """Handle one batch of late-feedback messages (topic ``vigil.feedback``); returns
        the messages that did not parse, once the batch is durably stored."""
        now = now_iso()
        good: list[Row] = []
        dead: list[Row] = []
        rejected: list[DeadLetter] = []
        for message in batch:
            try:
                feedback = self.redaction.feedback(parse_feedback(message.value))
                good.append(R.late_feedback_row(feedback, now))
            except EventError as exc:
                self.summary.rejected[f"feedback_{exc.reason}"] += 1
                _reject(message, exc, now, rejected, dead)
        await self.write({"feedback": good, "dead_letters": dead})
        self.summary.feedback_stored += len(good)
        return rejected

    async def write(self, tables: Mapping[str, Rows]) -> None:
        """Insert every non-empty table durably (`.writer`), dead letters redacted."""
        await self.writer.write(self.redaction.tables(tables))

    def stop_retrying(self) -> None:
        """Shutdown: a store write being retried gives up (see `StoreWriter`)."""
        self.writer.stop_retrying()


def _reject(
    message: RawMessage, exc: EventError, now: str, letters: list[DeadLetter], rows: list[Row]
) -> None:
    """``message`` did not parse: its dead letter (for the DLQ topic) and its row."""
    letters.append(DeadLetter(message, exc.reason, exc.detail))
    rows.append(
        R.dead_letter_row(
            message.source, message.position, exc.reason, exc.detail, message.value, now
        )
    )
