"""`vigil worker`: the Faust app around the same `Pipeline` that `vigil replay` runs.

Start-up: reach the broker (retried with backoff, one clear error line if it never
answers), create the topics if missing, open the store, build the pipeline with
`monitor.assembly.build_pipeline`, serve the store's HTTP endpoint when the store is
embedded, then run the Faust app until SIGTERM/SIGINT (or a batch that cannot be stored).
Shutdown: the batch in flight finishes and is committed (see `streams.consumer`), scorer
queues drain, stages stop, the store closes. Exit status 0 after a signal, 1 after a
fatal store/DLQ failure (its offsets were not committed: the batch is redelivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.assembly import build_pipeline
from monitor.config import Settings
from monitor.errors import BrokerError, ConfigError, StoreError, VigilError
from monitor.ops.allocator import limit_arenas, release_free_memory
from monitor.pipeline import Pipeline
from monitor.store import open_store
from monitor.store.base import Store
from monitor.store.lock import OwnedStore, own_embedded_store
from streams.admin import ensure_topics, wait_for_broker
from streams.app import build_app

log = logging.getLogger("vigil.worker")

#: How long shutdown waits for queued scorer jobs before stopping the stages anyway.
_DRAIN_TIMEOUT_S = 30.0
_PROGRESS_EVERY_S = 30.0
_BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


class _Failure:
    """The first fatal ingest error (`streams.app.Fatal`); recording one stops the worker."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.error: BaseException | None = None

    def record(self, exc: BaseException) -> None:
        log.error(
            "ingest failed; stopping without committing the batch in flight",
            extra={"error": _one_line(exc)},
        )
        if self.error is None:
            self.error = exc
        self._stop.set()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


class _OpenStore:
    """The store the worker writes, and how to let go of it."""

    def __init__(self, settings: Settings) -> None:
        self.owned: OwnedStore | None = None
        if settings.store_backend == "embedded":
            # This process owns the chDB directory: claim it (lock file), serve it on the
            # loopback HTTP endpoint and publish the URL, so other commands read through us.
            self.owned = own_embedded_store(settings.store, settings.privacy.raw_text_days)
            self.store: Store = self.owned.store
            log.info("store endpoint serving", extra={"url": self.owned.url})
        else:
            self.store = open_store(settings)

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()
        else:
            self.store.close()


async def _open_store(settings: Settings, stop: asyncio.Event) -> _OpenStore:
    """Open the store; a ClickHouse server that does not answer yet (a sidecar starting
    beside it, an outage) is retried ``store.connect_retries`` times with backoff, each
    try one warning, then the last error is raised (one line from the CLI)."""
    attempts = settings.store.connect_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return await asyncio.to_thread(_OpenStore, settings)
        except StoreError as exc:
            if settings.store_backend != "server" or attempt == attempts or stop.is_set():
                raise
            delay = min(10.0, 0.5 * 2.0 ** (attempt - 1))
            log.warning(
                "store unreachable at start-up, retrying",
                extra={"attempt": attempt, "of": attempts, "delay_s": delay, "error": str(exc)},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _counts(pipeline: Pipeline) -> dict[str, int]:
    summary = pipeline.summary
    return {
        "read": summary.read,
        "stored": summary.stored,
        "rejected": sum(summary.rejected.values()),
        "feedback_stored": summary.feedback_stored,
        "skipped_spans": summary.skipped_spans,
    }


async def _progress(pipeline: Pipeline) -> None:
    while True:
        await asyncio.sleep(_PROGRESS_EVERY_S)
        log.info("worker progress", extra=_counts(pipeline))


async def _release_memory(every_s: float) -> None:
    # In a worker thread: malloc_trim walks every arena (milliseconds on a GB heap).
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(release_free_memory)


def _install_signals(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: int) -> None:
        if stop.is_set():
            # A second signal while draining: the user wants out now. Offsets of the
            # batch in flight are not committed, so nothing is lost, only redone.
            log.warning("second signal, exiting without draining", extra={"signal": signum})
            os._exit(128 + signum)
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


async def _wait(stop: asyncio.Event, app: Any) -> None:
    # Faust marks the app should_stop when one of its services crashed.
    while not stop.is_set() and not app.should_stop:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _start(app: Any, settings: Settings) -> None:
    """Start the Faust app; its web server binding ``ops.port`` is the part that can fail
    on a shared host (a second worker on the same port): one error line, not a trace."""
    try:
        await app.start()
    except OSError as exc:
        if not settings.ops.enabled or exc.errno not in _BIND_ERRORS:
            raise
        ops = settings.ops
        raise ConfigError(
            f"cannot serve the operations endpoints on {ops.bind}:{ops.port}:"
            f" {os.strerror(exc.errno or 0).lower()} (set ops.port, or ops.enabled: false)"
        ) from exc


async def _run_app(
    settings: Settings, pipeline: Pipeline, failure: _Failure, stop: asyncio.Event
) -> None:
    """Run the Faust app until ``stop``; on return its last offsets are committed."""
    with tempfile.TemporaryDirectory(prefix="vigil-faust-") as datadir:
        built = build_app(settings, pipeline, failure.record, Path(datadir))
        app, ingest = built.app, built.ingest
        tasks: list[asyncio.Task[None]] = []
        try:
            await _start(app, settings)
            # A runtime dependency of the app: a crash in it stops the app.
            await app.add_runtime_dependency(ingest)
            log.info(
                "worker started",
                extra={
                    "group": settings.kafka.group_id,
                    "topics": [settings.kafka.events_topic, settings.kafka.feedback_topic],
                    "scorers": sorted(pipeline.stages),
                    "ops": (
                        f"http://{settings.ops.bind}:{settings.ops.port}"
                        if settings.ops.enabled
                        else None
                    ),
                },
            )
            tasks.append(asyncio.create_task(_progress(pipeline)))
            if settings.ops.release_memory_every_s > 0:
                every = settings.ops.release_memory_every_s
                tasks.append(asyncio.create_task(_release_memory(every)))
            await _wait(stop, app)
        finally:
            for task in tasks:
                task.cancel()
            # A store write being retried through an outage gives up now: its batch is
            # not committed (redelivered after restart) and shutdown does not hang on it.
            pipeline.stop_retrying()
            # First, while the DLQ producer still runs: the batch in flight settles and
            # is committed, then the events consumer leaves its group.
            await ingest.stop()
            await app.stop()


async def serve(
    settings: Settings, stop: asyncio.Event | None = None, *, signals: bool = True
) -> int:
    """Run the worker until ``stop`` is set (or SIGTERM/SIGINT when ``signals``)."""
    stop = stop or asyncio.Event()
    # Here, so `vigil up` (which calls `serve` directly) gets it too; before the store,
    # the scorers and the broker clients start their threads.
    limit_arenas(settings.ops.malloc_arenas)
    remove_signals = _install_signals(stop) if signals else (lambda: None)
    try:
        opened = await _open_store(settings, stop)
    except BaseException:
        remove_signals()
        raise
    pipeline = build_pipeline(settings, opened.store)
    failure = _Failure(stop)
    try:
        await pipeline.start()
        await _run_app(settings, pipeline, failure, stop)
        if failure.error is None:
            await _settle(pipeline)
    finally:
        await pipeline.stop()
        opened.close()
        remove_signals()
    log.info("worker stopped", extra=_counts(pipeline))
    if failure.error is not None:
        if isinstance(failure.error, VigilError):
            raise failure.error
        raise BrokerError(f"dead-letter send failed: {_one_line(failure.error)}") from failure.error
    return 0


async def _settle(pipeline: Pipeline) -> None:
    # Clean shutdown ends input like the end of a replay: finish queued scorer jobs (for a
    # while), then run the event-time jobs once at the watermark, so the last period's
    # drift and alerts are evaluated here too.
    try:
        drained = await pipeline.settle(_DRAIN_TIMEOUT_S)
    except VigilError as exc:
        log.error("final event-time jobs failed at shutdown", extra={"error": _one_line(exc)})
        return
    if not drained:
        log.warning(
            "scorer queues not drained at shutdown; their decisions stay pending",
            extra={"timeout_s": _DRAIN_TIMEOUT_S},
        )


def prepare(settings: Settings) -> None:
    """Reach the broker (with retries) and make sure the topics exist."""
    wait_for_broker(settings.kafka)
    ensure_topics(settings)


def run_worker(settings: Settings) -> int:
    """`vigil worker`: returns the exit status; `VigilError`s are printed by the CLI."""
    prepare(settings)
    return asyncio.run(serve(settings))
