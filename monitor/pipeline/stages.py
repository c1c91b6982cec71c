"""Async stages: a bounded queue in front of each model-backed scorer.

Live, the pipeline *offers* jobs; a full queue refuses at once (the decision becomes
``over_budget`` with reason ``queue_full``), so ingestion never waits on a slow model and
memory stays bounded. A replay *puts* them, waiting for room (`monitor.pipeline.handover`).
Workers take up to ``batch_size`` jobs, call the scorer, map what it returned to rows
(``rows``: scores, embeddings, incidents, judgments) and write them with the final
decision (``scored`` or ``failed``, or ``over_budget`` when the scorer itself declined
for budget, e.g. the judge's cost cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from monitor.errors import VigilError
from monitor.events import Event
from monitor.pipeline import rows as R
from monitor.pipeline.sampling import Decision
from monitor.scorers.base import Job, Scorer, ScoreResult
from monitor.times import now_iso

log = logging.getLogger("vigil.stages")

#: Writes {table: rows} durably (with retries); provided by the pipeline.
WriteFn = Callable[[dict[str, list[dict[str, Any]]]], Awaitable[None]]


class ResultsOut(Protocol):
    """Where stored results go next (`monitor.export.OtlpResultsExporter`), shared by
    the stages: started and stopped with each, handed each batch's scored events once
    they are written. `stored` must not block: the stage's next batch waits on it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def stored(self, scorer: str, results: Sequence[tuple[Event, ScoreResult]]) -> None: ...

    def stats(self, scorer: str) -> dict[str, int]: ...


class Stage:
    """A scorer behind a bounded queue, run by ``scorer.concurrency`` worker tasks."""

    def __init__(
        self, scorer: Scorer, write: WriteFn, queue_size: int, results: ResultsOut | None = None
    ) -> None:
        self.scorer = scorer
        self.name = scorer.name
        self._write = write
        self._results = results
        self._results_started = False
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self.outcomes: Counter[str] = Counter()
        # Called with every result the scorer returns (`monitor.ops.metrics` times judge
        # verdicts from them); a listener must be cheap and must not raise.
        self.listeners: list[Callable[[ScoreResult], None]] = []

    @property
    def depth(self) -> int:
        """Jobs queued, not yet taken by a worker task."""
        return self._queue.qsize()

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    def offer(self, job: Job) -> bool:
        """Queue a job; False (at once) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            return False
        return True

    async def put(self, job: Job) -> None:
        """Queue a job, waiting for room (replay: backpressure instead of refusal)."""
        await self._queue.put(job)

    async def start(self) -> None:
        if self._results is not None and not self._results_started:
            self._results_started = True
            await self._results.start()
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._run(), name=f"stage-{self.name}-{i}")
                for i in range(max(1, self.scorer.concurrency))
            ]

    async def drain(self) -> None:
        """Wait until every queued job has been scored and written."""
        await self._queue.join()

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        await self.scorer.aclose()
        if self._results is not None and self._results_started:
            self._results_started = False
            await self._results.stop()  # the last stage to stop flushes it

    def stats(self) -> dict[str, Any]:
        exported = self._results.stats(self.name) if self._results is not None else {}
        return {"outcomes": dict(self.outcomes), **self.scorer.stats(), **exported}

    async def _take_batch(self) -> list[Job]:
        batch = [await self._queue.get()]
        while len(batch) < self.scorer.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._take_batch()
            try:
                await self._score_and_write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad batch must not kill the stage
                log.error(
                    "stage batch failed",
                    extra={"stage": self.name, "jobs": len(batch), "error": type(exc).__name__},
                )
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _score_and_write(self, batch: list[Job]) -> None:
        scorer = self.scorer
        try:
            results = await scorer.score(batch)
        except VigilError as exc:
            results = [
                ScoreResult(job.event.event_id, error=f"{type(exc).__name__}: {exc}")
                for job in batch
            ]
        by_id = {r.event_id: r for r in results}
        now = now_iso()
        tables: dict[str, list[dict[str, Any]]] = {"scores": [], "decisions": []}
        scored: list[tuple[Event, ScoreResult]] = []
        for job in batch:
            event = job.event
            result = by_id.get(event.event_id)
            if result is None:
                result = ScoreResult(event.event_id, error="no result returned")
            for listen in self.listeners:
                listen(result)
            if result.over_budget is not None:
                decision = Decision(self.name, "over_budget", result.over_budget[:200])
            elif result.error is not None:
                decision = Decision(self.name, "failed", result.error[:200])
            else:
                decision = Decision(self.name, "scored", job.reason)
                for score in result.scores:
                    tables["scores"].append(
                        R.score_row(
                            event,
                            self.name,
                            scorer.version,
                            score.name,
                            score.value,
                            score.label,
                            now,
                        )
                    )
                for table, rows in R.result_rows(event, self.name, result, now).items():
                    tables.setdefault(table, []).extend(rows)
                scored.append((event, result))
            self.outcomes[decision.decision] += 1
            tables["decisions"].append(R.decision_row(event, decision, now))
        await self._write(tables)
        if self._results is not None:
            self._results.stored(self.name, scored)  # only what the store has: a copy
