"""A store outage mid-stream: the worker survives it, and nothing is lost or doubled.

The worker writes through the server backend (clickhouse-connect) to a chDB store served
by Vigil's HTTP endpoint, which the test stops and, once the worker has retried for
longer than the old give-up limit, starts again on the same port. Meanwhile the worker
must stop committing (its offsets stand still), keep the scores it computed, and log
that ingest is paused; afterwards every event and every toxicity score is stored exactly
once and no decision is left pending. Real tansu broker, real worker subprocess, real
toxicity model.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_settings
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import serve_store
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import consumed, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration

_ATTEMPT = re.compile(r"\"attempt\":\s*(\d+)")


def _failed_attempts(log: Path) -> int:
    """The highest store-write attempt the worker has logged as failed."""
    text = log.read_text(errors="replace")
    found = [
        int(m.group(1))
        for line in text.splitlines()
        if "store write failed" in line
        for m in [_ATTEMPT.search(line)]
        if m
    ]
    return max(found, default=0)


def _wait_for(condition: Any, what: str, worker: Any, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.alive, f"worker exited while waiting for {what}:\n{worker.log_tail()}"
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{worker.log_tail()}")


def test_worker_survives_a_store_outage_and_stores_everything_once(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    store.migrate()
    endpoint = serve_store(store)
    port, key = endpoint.port, endpoint.writer_key
    try:
        overrides = stream_overrides(
            dev_broker,
            tmp_path / "unused",
            kafka={"batch_max": 200},
            store={"backend": "server", "url": endpoint.writer_url, "retry_max_delay_s": 2.0},
            toxicity={"enabled": True},
            sampling={"rates": {"toxicity": 1.0}, "budget_per_minute": {"toxicity": 1e9}},
        )
        settings = load_settings(overrides=overrides)
        ensure_topics(settings)
        lines = list(generate_lines(TrafficSpec(n=3_000, feedback_share=0.0, seed=8)))
        first = produce_lines(settings, lines[:1_500])["end_offsets"]
        worker = start_worker(settings)
        wait_consumed(settings, first, worker, at_least=400)

        endpoint.close()  # the outage begins
        second = produce_lines(settings, lines[1_500:])["end_offsets"]
        ends = {k: max(first.get(k, 0), second.get(k, 0)) for k in first | second}
        _wait_for(lambda: _failed_attempts(worker.log_path) >= 1, "a failed write", worker)
        paused_at = consumed(settings, ends)
        # The old code gave up after 5 retries (about 3 s) and exited; keep the store away
        # until the worker has retried twice that often.
        _wait_for(lambda: _failed_attempts(worker.log_path) >= 10, "ten attempts", worker)
        assert consumed(settings, ends) == paused_at  # nothing committed while down
        assert paused_at < sum(ends.values())

        endpoint = serve_store(store, port=port, writer_key=key)  # the store is back
        wait_consumed(settings, ends, worker)
        assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
        log = worker.log_path.read_text(errors="replace")
        assert "ingest paused" in log and "store writes recovered" in log

        [events] = store.query(
            "SELECT count() AS n, uniqExact(event_id) AS ids FROM vigil.events FINAL"
        )
        decisions = store.query(
            "SELECT decision, count() AS n FROM vigil.decisions FINAL"
            " WHERE scorer = 'toxicity' GROUP BY decision"
        )
        [scores] = store.query(
            "SELECT count() AS n, uniqExact(event_id) AS ids FROM vigil.scores FINAL"
            " WHERE scorer = 'toxicity'"
        )
    finally:
        endpoint.close()
        store.close()
    assert (int(events["n"]), int(events["ids"])) == (3_000, 3_000)
    by_decision = {row["decision"]: int(row["n"]) for row in decisions}
    assert by_decision == {"scored": 3_000}
    # One toxicity score row per scored event (the model's one score), none doubled.
    assert int(scores["ids"]) == 3_000 and int(scores["n"]) % 3_000 == 0


def test_worker_started_while_the_store_is_down_waits_for_it(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    store.migrate()
    endpoint = serve_store(store)
    port, key, url = endpoint.port, endpoint.writer_key, endpoint.writer_url
    endpoint.close()  # the store is down before the worker starts
    try:
        overrides = stream_overrides(
            dev_broker, tmp_path / "unused", store={"backend": "server", "url": url}
        )
        settings = load_settings(overrides=overrides)
        ensure_topics(settings)
        ends = produce_lines(settings, list(generate_lines(TrafficSpec(n=500, seed=2))))
        worker = start_worker(settings)
        _wait_for(
            lambda: "store unreachable at start-up" in worker.log_path.read_text(errors="replace"),
            "a start-up retry",
            worker,
        )
        endpoint = serve_store(store, port=port, writer_key=key)
        wait_consumed(settings, ends["end_offsets"], worker)
        assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
        [events] = store.query("SELECT count() AS n FROM vigil.events FINAL")
    finally:
        endpoint.close()
        store.close()
    assert int(events["n"]) == 500
