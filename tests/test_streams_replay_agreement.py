"""`vigil replay` and the live worker make the same decisions, and capture the same
failures, for the same events."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from monitor.config import Settings, load_settings
from monitor.replay import replay_file
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, demo_incidents, generate_lines

pytestmark = pytest.mark.integration

#: Toxicity is the one model scorer cheap enough here (a linear model shipped in a wheel).
#: A sampling rate and a tight event-time budget make every decision kind appear.
_SCORING = {
    "toxicity": {"enabled": True, "backend": "profanity-check"},
    "sampling": {"rates": {"toxicity": 0.5}, "budget_per_minute": {"toxicity": 12.0}},
}


def _decisions(data_dir: Path) -> set[tuple[str, str, str, str]]:
    store = EmbeddedStore(data_dir)
    try:
        rows = store.query("SELECT event_id, scorer, decision, reason FROM vigil.decisions FINAL")
    finally:
        store.close()
    return {(r["event_id"], r["scorer"], r["decision"], r["reason"]) for r in rows}


def _failures(data_dir: Path) -> set[tuple[str, str, str]]:
    store = EmbeddedStore(data_dir)
    try:
        rows = store.query("SELECT event_id, reason, detail FROM vigil.failures FINAL")
    finally:
        store.close()
    return {(r["event_id"], r["reason"], r["detail"]) for r in rows}


def test_replay_and_live_worker_agree_on_decisions(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object
) -> None:
    spec = TrafficSpec(n=3_000, seed=3, malformed_share=0.005)
    spec.incidents = demo_incidents(spec.start, spec.interval_s, spec.n)
    lines = list(generate_lines(spec))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))

    replayed: Settings = load_settings(
        overrides=stream_overrides(dev_broker, tmp_path / "replay", **_SCORING)
    )
    asyncio.run(replay_file(replayed, path))

    live = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "live", **_SCORING))
    ensure_topics(live)
    sent = produce_lines(live, lines)
    worker = start_worker(live)  # type: ignore[operator]
    wait_consumed(live, sent["end_offsets"], worker)
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()  # drains the scorer queue

    from_replay, from_live = _decisions(tmp_path / "replay"), _decisions(tmp_path / "live")
    kinds = {d[2] for d in from_replay}
    assert {"scored", "sampled_out", "over_budget"} <= kinds, kinds
    assert len(from_replay) == 3_000
    assert from_live == from_replay

    # Failure capture is an event-time job too: the same failures, with the same details.
    failed_replay, failed_live = _failures(tmp_path / "replay"), _failures(tmp_path / "live")
    reasons = {f[1] for f in failed_replay}
    expected = {"pii_leak", "negative_feedback", "truncated_answer", "alert_example"}
    assert expected <= reasons, reasons
    assert failed_live == failed_replay
