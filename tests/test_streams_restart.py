"""Kill the worker mid-stream (SIGTERM and SIGKILL), restart it: nothing lost, no duplicates."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import consumed, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_after_kill_gives_exact_counts(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object, signum: int
) -> None:
    # Small batches so the kill lands between commits, in the middle of the stream.
    settings = load_settings(
        overrides=stream_overrides(dev_broker, tmp_path / "data", kafka={"batch_max": 200})
    )
    ensure_topics(settings)
    lines = list(generate_lines(TrafficSpec(n=8_000, malformed_share=0.01, seed=5)))
    first = produce_lines(settings, lines[:5_000])

    worker = start_worker(settings)  # type: ignore[operator]
    wait_consumed(settings, first["end_offsets"], worker, at_least=400)
    status = worker.signal(signum)
    at_kill = consumed(settings, first["end_offsets"])
    assert status == (0 if signum == signal.SIGTERM else -signal.SIGKILL), worker.log_tail()

    # More traffic while no worker runs, then a fresh worker picks up where the group left.
    second = produce_lines(settings, lines[5_000:])
    ends = {
        k: max(first["end_offsets"].get(k, 0), second["end_offsets"].get(k, 0))
        for k in first["end_offsets"] | second["end_offsets"]
    }
    restarted = start_worker(settings)  # type: ignore[operator]
    wait_consumed(settings, ends, restarted)
    assert restarted.signal(signal.SIGTERM) == 0, restarted.log_tail()

    malformed = len(lines) - 8_000
    store = EmbeddedStore(settings.store.data_dir)
    try:
        [final] = store.query(
            "SELECT count() AS n, uniqExact(event_id) AS ids FROM vigil.events FINAL"
        )
        [raw] = store.query("SELECT count() AS n FROM vigil.events")
        [dead] = store.query("SELECT count() AS n FROM vigil.dead_letters FINAL")
        [checks] = store.query("SELECT count() AS n FROM vigil.checks FINAL")
    finally:
        store.close()
    assert (int(final["n"]), int(final["ids"])) == (8_000, 8_000)
    assert int(checks["n"]) == 8_000
    assert int(dead["n"]) == malformed
    # Redelivered rows exist before merges (at-least-once) but never change the FINAL view.
    assert int(raw["n"]) >= 8_000
    print(
        f"killed with {signal.Signals(signum).name} at {at_kill}/{len(lines)} committed; "
        f"rows before merge {raw['n']}"
    )
