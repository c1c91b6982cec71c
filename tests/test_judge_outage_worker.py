"""The judge answering 429, or hanging, under the live worker: ingestion keeps its pace.

The judge endpoint here is a small local HTTP server that answers like an
OpenAI-compatible one but can be told to refuse (429 with Retry-After) or to hang: the
error paths the real llama.cpp server cannot produce on demand. The worker, the broker,
the store and the openai client are the real ones. While the judge is broken every
event is still ingested and committed, and every event gets a judge decision in the
store (scored, failed with its reason, or over_budget when the queue was full), never
silence.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Settings, load_settings
from monitor.store import open_store
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import stream_overrides, wait_consumed
from tests.fixtures.judge_stub import StubJudge
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration

def _settings(dev_broker: DevBroker, tmp_path: Path, judge: StubJudge, **extra: Any) -> Settings:
    overrides = stream_overrides(
        dev_broker,
        tmp_path / "data",
        kafka={"batch_max": 100},
        judge={
            "enabled": True,
            "base_url": judge.base_url,
            "timeout_s": 2.0,
            "max_retries": 1,
            "backoff_s": 0.1,
            "breaker_failures": 3,
            "breaker_cooldown_s": 2.0,
            "queue_size": 16,
            "pairwise": False,
        },
        sampling={"rates": {"judge": 1.0}, "budget_per_minute": {"judge": 1e9}},
        **extra,
    )
    return load_settings(overrides=overrides)


def _judge_decisions(settings: Settings) -> Counter[str]:
    """The judge's decisions by kind, read while the worker runs (through its endpoint)."""
    store = open_store(settings)
    try:
        rows = store.query(
            "SELECT decision, count() AS n FROM vigil.decisions FINAL "
            "WHERE scorer = 'judge' GROUP BY decision"
        )
    finally:
        store.close()
    return Counter({row["decision"]: int(row["n"]) for row in rows})


@pytest.mark.parametrize("mode", ["429", "hang"])
def test_a_broken_judge_never_holds_up_ingest(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any, stub_judge: StubJudge, mode: str
) -> None:
    judge = stub_judge
    judge.mode = mode
    settings = _settings(dev_broker, tmp_path, judge)
    ensure_topics(settings)
    lines = list(generate_lines(TrafficSpec(n=600, feedback_share=0.0, seed=12)))
    ends = produce_lines(settings, lines)["end_offsets"]
    worker = start_worker(settings)
    wait_consumed(settings, ends, worker)  # every event committed while the judge is broken
    assert judge.calls[mode] > 0
    judge.release.set()
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()

    store = EmbeddedStore(settings.store.data_dir)
    try:
        [events] = store.query("SELECT count() AS n FROM vigil.events FINAL")
        rows = store.query(
            "SELECT decision, reason FROM vigil.decisions FINAL WHERE scorer = 'judge'"
        )
    finally:
        store.close()
    assert int(events["n"]) == 600
    assert len(rows) == 600  # one judge decision per event: nothing silent
    decisions = Counter(row["decision"] for row in rows)
    assert decisions["scored"] == 0
    assert decisions["failed"] > 0
    assert set(decisions) <= {"failed", "over_budget", "pending"}
    reasons = " ".join(row["reason"] for row in rows if row["decision"] == "failed")
    assert (
        ("429" in reasons or "RateLimit" in reasons or "circuit" in reasons)
        if mode == "429"
        else ("imeout" in reasons or "circuit" in reasons)
    )


def _decisions_when(
    settings: Settings, worker: Any, condition: Callable[[Counter[str]], bool]
) -> Counter[str]:
    """The judge's decisions once ``condition`` holds (the worker must stay up meanwhile)."""
    deadline = time.monotonic() + 300
    now = _judge_decisions(settings)
    while not condition(now):
        assert worker.alive and time.monotonic() < deadline, (now, worker.log_tail())
        time.sleep(0.5)
        now = _judge_decisions(settings)
    return now


@pytest.mark.parametrize("mode", ["429", "hang"])
def test_failures_are_scored_once_the_judge_recovers(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any, stub_judge: StubJudge, mode: str
) -> None:
    judge = stub_judge
    judge.mode = mode
    settings = _settings(dev_broker, tmp_path, judge, requeue={"every_s": 1.0})
    ensure_topics(settings)
    lines = list(generate_lines(TrafficSpec(n=300, feedback_share=0.0, seed=13)))
    ends = produce_lines(settings, lines)["end_offsets"]
    worker = start_worker(settings)
    wait_consumed(settings, ends, worker)
    # A hanging judge fails by its timeout, after the commit.
    broken = _decisions_when(settings, worker, lambda d: d["failed"] > 0)
    assert broken["scored"] == 0
    judge.mode = "ok"
    judge.release.set()
    # Re-queue rounds (every second here) retry the retryable failures as the queue has
    # room; wait for that condition, not for a time.
    now = _decisions_when(settings, worker, lambda d: not d["failed"] and not d["pending"])
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
    # Every failure became a verdict; an event refused for a full queue stays recorded so.
    assert now["scored"] >= broken["failed"]
    assert sum(now.values()) == 300
    assert set(now) <= {"scored", "over_budget"}
