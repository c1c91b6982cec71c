"""Scorer work left undone is queued again, so no decision stays ``pending`` for good.

A decision is ``pending`` from the moment its job is queued until the stage writes the
outcome. Jobs queued in memory are lost when the worker is SIGKILLed, or left when the
shutdown drain times out; a judge that was down leaves ``failed`` decisions whose
failure says nothing about the event (``circuit_open``, a timeout, a 429). The live
worker re-queues them (settings ``requeue.*``):

- at start-up: every ``pending`` decision of an event ingested before this process
  started (a later one is a job queued right now) and every retryable ``failed`` one,
  waiting for room in the queue as a replay does, in a task so ingest starts at once;
- every ``requeue.every_s`` while running: the retryable ``failed`` ones only (a
  ``pending`` decision may be a job queued right now).

Each round re-queues at most ``requeue.max_per_round`` jobs per scorer, rebuilt from the
stored event; a periodic round queues only as many as its stage's queue takes at once
(`Stage.offer`): a backlog never delays ingest, it waits for the next round. The
stage writes the outcome as usual; its rank replaces ``pending`` / ``failed`` in the
store (`monitor.pipeline.sampling.RANK`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.config import RequeueSettings
from monitor.errors import EventError, StoreError
from monitor.events import Event, parse_event
from monitor.pipeline.stages import Stage
from monitor.scorers.base import Job
from monitor.store.base import Store
from monitor.store.queries.requeue import undone_jobs
from monitor.times import iso, parse_ts

log = logging.getLogger("vigil.requeue")


class Requeue:
    """Rounds of re-queued scorer work; ``requeued`` counts jobs per scorer."""

    def __init__(
        self, settings: RequeueSettings, store: Store, stages: Mapping[str, Stage]
    ) -> None:
        self.settings = settings
        self.store = store
        self.stages = stages
        self.requeued: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        # Pending decisions of events ingested from here on are this process's own jobs.
        self._started = time.time()

    async def round(self, *, pending: bool, wait: bool = False) -> dict[str, int]:
        """One round over every stage; returns jobs re-queued per scorer. ``wait`` (the
        start-up round, run as a task) waits for room in a full queue instead of leaving
        the rest for the next round."""
        done: dict[str, int] = {}
        now = time.time()
        since = datetime.fromtimestamp(now - self.settings.max_age_s, tz=UTC)
        # A pending decision from this process is a job in a queue right now: only those
        # of events ingested before it started are undone work.
        before = datetime.fromtimestamp(self._started if pending else now + 1, tz=UTC)
        for name, stage in self.stages.items():
            try:
                rows = await asyncio.to_thread(
                    undone_jobs,
                    self.store,
                    name,
                    pending=pending,
                    retryable=self.settings.retryable,
                    since=since,
                    before=before,
                    limit=self.settings.max_per_round,
                )
            except StoreError as exc:  # the next round tries again
                log.warning(
                    "re-queue query failed", extra={"scorer": name, "error": str(exc)[:200]}
                )
                continue
            queued = 0
            for row in rows:
                job = _job(row)
                if job is None:
                    continue
                if wait:
                    await stage.put(job)
                elif not stage.offer(job):
                    break  # the queue is full: the rest waits for the next round
                queued += 1
            if queued:
                self.requeued[name] += queued
                done[name] = queued
                log.info(
                    "re-queued undone scorer work",
                    extra={"scorer": name, "jobs": queued, "found": len(rows), "pending": pending},
                )
        return done

    def start(self) -> None:
        """The start-up round (pending and failed), then one every ``every_s`` (failed
        only), in a task until `stop`: ingest starts at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="vigil-requeue")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        try:
            await self.round(pending=True, wait=True)
        except Exception as exc:
            log.error("start-up re-queue failed", extra={"error": type(exc).__name__})
        while True:
            await asyncio.sleep(self.settings.every_s)
            try:
                await self.round(pending=False)
            except Exception as exc:  # a round must never stop the worker
                log.error("re-queue round failed", extra={"error": type(exc).__name__})


def _job(row: dict[str, Any]) -> Job | None:
    """The job of a stored event, or None (logged) if the row no longer parses."""
    try:
        event = _event(row)
    except (EventError, ValueError, TypeError) as exc:
        log.warning(
            "stored event cannot be re-queued",
            extra={"event_id": str(row.get("event_id"))[:200], "error": type(exc).__name__},
        )
        return None
    return Job(event, list(row.get("failed") or []), "requeued")


def _event(row: dict[str, Any]) -> Event:
    """The event as the contract has it, from its ``events`` row."""
    response: dict[str, Any] = {"content": row["response"]}
    if row.get("finish_reason"):
        response["finish_reason"] = row["finish_reason"]
    for key in ("latency_ms", "prompt_tokens", "completion_tokens"):
        if row.get(key) is not None:
            response[key] = row[key]
    raw: dict[str, Any] = {
        "event_id": row["event_id"],
        "ts": iso(parse_ts(row["ts"])),
        "app": row["app"],
        "route": row["route"],
        "model": row["model"],
        "model_version": row["model_version"],
        "request": orjson.loads(row["request"]),
        "response": response,
        "metadata": row.get("metadata") or {},
    }
    if row.get("feedback_rating") is not None:
        raw["feedback"] = {"rating": row["feedback_rating"]}
    if row.get("shadow_response"):
        raw["shadow"] = {"content": row["shadow_response"], "model": row["shadow_model"]}
    return parse_event(orjson.dumps(raw))
