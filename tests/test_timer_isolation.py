"""A timer that raises is counted and logged; ingestion and the later timers go on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from monitor.config import Settings
from monitor.pipeline import Pipeline
from monitor.pipeline.source import RawMessage
from monitor.store.embedded import EmbeddedStore

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _batch(minute: int) -> list[RawMessage]:
    """Three events in minute ``minute`` of the stream."""
    out = []
    for i in range(3):
        ts = START + timedelta(minutes=minute, seconds=10 * i)
        event = {
            "event_id": f"e-{minute}-{i}",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "model": "m",
            "request": {"messages": [{"role": "user", "content": "hi"}]},
            "response": {"content": "hello"},
        }
        out.append(RawMessage(orjson.dumps(event), "test", f"{minute}:{i}"))
    return out


def test_raising_timer_does_not_stop_ingest(
    settings: Settings, embedded_store: EmbeddedStore, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, datetime]] = []

    async def boom(as_of: datetime) -> None:
        calls.append(("boom", as_of))
        raise RuntimeError("rollup broke")

    async def after(as_of: datetime) -> None:
        calls.append(("after", as_of))

    async def run() -> Pipeline:
        pipeline = Pipeline(settings, embedded_store)
        pipeline.add_timer("boom", 60, boom)
        pipeline.add_timer("after", 60, after)
        await pipeline.start()
        try:
            for minute in range(4):
                await pipeline.process(_batch(minute))
        finally:
            await pipeline.stop()
        return pipeline

    with caplog.at_level(logging.ERROR, logger="vigil.timers"):
        pipeline = asyncio.run(run())

    # Every batch was stored although a timer raised at each boundary.
    stored = embedded_store.query(
        f"SELECT count() AS n FROM {embedded_store.database}.events FINAL"
    )
    assert stored[0]["n"] == 12
    assert pipeline.summary.stored == 12
    # Boundaries 08:01, 08:02, 08:03 were crossed: each timer ran at each, in order.
    boundaries = [START + timedelta(minutes=m) for m in (1, 2, 3)]
    assert calls == [(name, b) for b in boundaries for name in ("boom", "after")]
    assert pipeline.health.timer_errors == {"boom": 3}
    assert pipeline.health.as_dict()["timer_errors"] == {"boom": 3}
    assert pipeline.summary.timers_fired == {"after": 3}
    failed = [r for r in caplog.records if r.getMessage() == "timer failed"]
    assert len(failed) == 3
    assert {getattr(r, "timer", None) for r in failed} == {"boom"}
    assert {getattr(r, "error", None) for r in failed} == {"RuntimeError"}


def test_cancellation_is_not_swallowed(settings: Settings, embedded_store: EmbeddedStore) -> None:
    async def cancelled(as_of: datetime) -> None:
        raise asyncio.CancelledError

    async def run() -> None:
        pipeline = Pipeline(settings, embedded_store)
        pipeline.add_timer("cancelled", 60, cancelled)
        await pipeline.start()
        try:
            await pipeline.process(_batch(0))
            await pipeline.process(_batch(1))
        finally:
            await pipeline.stop()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
