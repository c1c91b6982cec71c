"""Evaluation results to an OpenTelemetry collector over OTLP/HTTP (protobuf).

Scorer stages hand over what they stored (`OtlpResultsExporter.stored`, after the write,
so an exported verdict is always one the store has too). Handing over never waits: the
events go into a bounded queue, a background task sends them in batches of
``export.batch_max`` (or what arrived within ``export.flush_interval_s``) as one
``ExportLogsServiceRequest`` each, and retries a failed request with a doubling backoff
(transport errors and HTTP 429/502/503/504, the codes OTLP calls retryable). A full
queue, a request out of tries, a refused request (other 4xx/5xx) or what is still queued
after ``export.drain_timeout_s`` at shutdown is dropped and counted per scorer
(``export_dropped`` in the run summary's stage stats), never retried forever: the store
keeps every result, export is a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from monitor.config import ResultsExportSettings
from monitor.events import Event
from monitor.export.records import evaluation_records
from monitor.logs import mask_urls
from monitor.scorers.base import ScoreResult

log = logging.getLogger("vigil.export")

_RETRYABLE = frozenset({429, 502, 503, 504})
_FIRST_DELAY_S = 0.5


class _Refused(Exception):
    """A request the collector will not take, however often it is sent."""


class _Retry(Exception):
    """A request worth sending again (HTTP 429/502/503/504)."""


class OtlpResultsExporter:
    """One per pipeline, shared by its stages: each `start` is matched by a `stop`, and
    the last `stop` drains the queue (for ``drain_timeout_s``) and closes the client."""

    def __init__(self, settings: ResultsExportSettings) -> None:
        self.settings = settings
        self.scorers = frozenset(settings.scorers)
        self._queue: deque[tuple[str, LogRecord]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._users = 0
        self._closing = False
        self._in_flight: list[tuple[str, LogRecord]] = []
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._resource = Resource(
            attributes=[
                KeyValue(key="service.name", value=AnyValue(string_value=settings.service_name))
            ]
        )

    def stats(self, scorer: str) -> dict[str, int]:
        return {"exported": self.sent[scorer], "export_dropped": self.dropped[scorer]}

    def stored(self, scorer: str, results: Sequence[tuple[Event, ScoreResult]]) -> None:
        """Queue the evaluation events of ``results`` (stored already); never blocks."""
        if scorer not in self.scorers or not results:
            return
        now_ns = time.time_ns()
        room = self.settings.queue_max - len(self._queue)
        for event, result in results:
            for record in evaluation_records(event, scorer, result, now_ns):
                if room <= 0:
                    self._drop(scorer, 1, "export queue full")
                    continue
                self._queue.append((scorer, record))
                room -= 1
        self._ready.set()

    async def start(self) -> None:
        self._users += 1
        if self._task is None:
            self._closing = False
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)
            self._task = asyncio.create_task(self._run(), name="vigil-otlp-export")

    async def stop(self) -> None:
        self._users -= 1
        if self._users > 0 or self._task is None:
            return
        task, self._task = self._task, None
        self._ready.set()
        # The sender flushes what is queued, then ends (`_closing`); past the timeout the
        # request in flight is abandoned and the rest dropped.
        self._closing = True
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, self.settings.drain_timeout_s)
        left = [*self._in_flight, *self._queue]
        for scorer, n in Counter(s for s, _ in left).items():
            self._drop(scorer, n, "not sent at shutdown")
        self._queue.clear()
        self._in_flight = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        settings = self.settings
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
            if len(self._queue) < settings.batch_max and not self._closing:
                # A partial batch waits a little for company: fewer, larger requests.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full(), settings.flush_interval_s)
            take = min(settings.batch_max, len(self._queue))
            self._in_flight = [self._queue.popleft() for _ in range(take)]
            await self._send(self._in_flight)
            self._in_flight = []

    async def _full(self) -> None:
        while len(self._queue) < self.settings.batch_max and not self._closing:
            self._ready.clear()
            await self._ready.wait()

    async def _send(self, batch: list[tuple[str, LogRecord]]) -> None:
        body = self._request([r for _, r in batch]).SerializeToString()
        settings = self.settings
        error = ""
        for attempt in range(1, settings.max_attempts + 1):
            try:
                await self._post(body)
            except _Refused as exc:
                error = str(exc)
                break
            except (httpx.HTTPError, _Retry) as exc:
                error = str(exc) or type(exc).__name__
                if attempt < settings.max_attempts:
                    delay = min(settings.retry_max_delay_s, _FIRST_DELAY_S * 2 ** (attempt - 1))
                    await asyncio.sleep(delay)
                continue
            for scorer, n in Counter(s for s, _ in batch).items():
                self.sent[scorer] += n
            return
        for scorer, n in Counter(s for s, _ in batch).items():
            self._drop(scorer, n, mask_urls(error[:300]))

    async def _post(self, body: bytes) -> None:
        assert self._client is not None
        response = await self._client.post(
            self.settings.otlp_endpoint,
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        if response.status_code in _RETRYABLE:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code >= 300:
            raise _Refused(f"HTTP {response.status_code}")

    def _request(self, records: list[LogRecord]) -> ExportLogsServiceRequest:
        scope = InstrumentationScope(name="vigil")
        logs = ScopeLogs(scope=scope, log_records=records)
        return ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(resource=self._resource, scope_logs=[logs])]
        )

    def _drop(self, scorer: str, n: int, why: str) -> None:
        first = not self.dropped[scorer]
        self.dropped[scorer] += n
        if first or self.dropped[scorer] % 1000 < n:
            # First drop loudly, then once per thousand: an unreachable collector must
            # not flood the log.
            log.warning(
                "evaluation events not exported",
                extra={"scorer": scorer, "dropped": n, "dropped_total": self.dropped[scorer],
                       "why": why},
            )  # fmt: skip
