"""Scorer work is durable: jobs queued when the worker is SIGKILLed are done after restart.

A judge that hangs keeps the worker's judge queue full; the worker is SIGKILLed with
those jobs in memory and their decisions ``pending`` in the store. The judge recovers,
a new worker starts, and its start-up re-queue (`monitor.pipeline.requeue`) scores
them: once its queues drain, no decision of any scorer is left pending. The toxicity
scorer runs too. Real tansu broker, real worker subprocesses, real toxicity model; the
judge endpoint is the stand-in (tests/fixtures/judge_stub.py), since hanging on demand
is what the real server cannot do.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_settings
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import stream_overrides, wait_consumed
from tests.fixtures.judge_stub import StubJudge
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration


def _decisions(data_dir: Path) -> dict[str, Counter[str]]:
    store = EmbeddedStore(data_dir)
    try:
        rows = store.query(
            "SELECT scorer, decision, count() AS n FROM vigil.decisions FINAL"
            " GROUP BY scorer, decision"
        )
    finally:
        store.close()
    out: dict[str, Counter[str]] = {}
    for row in rows:
        out.setdefault(row["scorer"], Counter())[row["decision"]] = int(row["n"])
    return out


def test_jobs_lost_to_sigkill_are_scored_after_restart(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any, stub_judge: StubJudge
) -> None:
    stub_judge.mode = "hang"
    overrides = stream_overrides(
        dev_broker,
        tmp_path / "data",
        kafka={"batch_max": 100},
        judge={
            "enabled": True,
            "base_url": stub_judge.base_url,
            "timeout_s": 600.0,
            "max_retries": 0,
            "concurrency": 2,
            "queue_size": 32,
            "pairwise": False,
        },
        toxicity={"enabled": True},
        sampling={
            "rates": {"judge": 1.0, "toxicity": 1.0},
            "budget_per_minute": {"judge": 1e9, "toxicity": 1e9},
        },
    )
    settings = load_settings(overrides=overrides)
    ensure_topics(settings)
    lines = list(generate_lines(TrafficSpec(n=300, feedback_share=0.0, seed=21)))
    ends = produce_lines(settings, lines)["end_offsets"]
    first = start_worker(settings)
    wait_consumed(settings, ends, first)
    deadline = time.monotonic() + 60
    while stub_judge.calls["hang"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # both judge workers hold a request: the queue is full behind them
    assert first.signal(signal.SIGKILL) == -signal.SIGKILL

    lost = _decisions(settings.store.data_dir)["judge"]["pending"]
    assert lost >= 32  # the queued and in-flight jobs, recorded pending, never done

    stub_judge.mode = "ok"
    stub_judge.release.set()
    second = start_worker(settings)
    deadline = time.monotonic() + 300
    while "re-queued undone scorer work" not in second.log_path.read_text(errors="replace"):
        assert second.alive and time.monotonic() < deadline, second.log_tail()
        time.sleep(0.2)
    # Every lost job is back in a queue; a clean stop drains the queues before exiting.
    assert second.signal(signal.SIGTERM) == 0, second.log_tail()
    assert stub_judge.calls["ok"] > 0

    after = _decisions(settings.store.data_dir)
    assert all(counts["pending"] == 0 for counts in after.values()), after
    assert after["judge"]["scored"] >= lost
    assert sum(after["judge"].values()) == sum(after["toxicity"].values()) == 300
