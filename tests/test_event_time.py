"""Event time is bounded: stray timestamps are dead-lettered and never move time.

The rule (`monitor.pipeline.event_time`) on its own, then through the real entry points:
`replay_file` over generated traffic with stray events planted in it, and the live worker
on a tansu broker. Either way the strays are dead letters with reason ``ts_out_of_range``
and the rest of the traffic gives exactly what it gives without them: the same timer
firings, the same sampling decisions (budgets refilled in event time), the same alerts.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from monitor.config import EventSettings, Settings, load_settings
from monitor.events import Event, parse_event
from monitor.pipeline.event_time import OUT_OF_RANGE, EventTimeBounds
from monitor.replay import replay_file
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import read_topic, stream_overrides, wait_consumed
from vigil.traffic import BAD_VERSION, TrafficSpec, demo_incidents, generate_lines

DAY = 86_400.0
FUTURE = "2999-01-01T00:00:00Z"
PAST = "1999-01-01T00:00:00Z"


def _traffic(n: int, seed: int) -> list[bytes]:
    spec = TrafficSpec(n=n, seed=seed)
    spec.incidents = demo_incidents(spec.start, spec.interval_s, n)
    return list(generate_lines(spec))


def _stray(template: bytes, ts: str, name: str) -> bytes:
    """A valid event stamped ``ts``. Negative feedback makes it a priority for every
    scorer, so it would take from the sampler's budget if the sampler ever saw it."""
    data = orjson.loads(template)
    data.update(event_id=f"stray-{name}", ts=ts, feedback={"rating": -1})
    return orjson.dumps(data)


def _plant(lines: list[bytes], strays: dict[int, str]) -> tuple[list[bytes], list[bytes]]:
    """``lines`` with a stray stamped ``strays[i]`` before line ``i``; and the strays."""
    out: list[bytes] = []
    planted: list[bytes] = []
    for i, line in enumerate(lines):
        if i in strays:
            planted.append(_stray(line, strays[i], f"{i}"))
            out.append(planted[-1])
        out.append(line)
    return out, planted


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


# -- the rule ------------------------------------------------------------------------------


def _events(lines: list[bytes]) -> list[Event]:
    return [parse_event(line) for line in lines]


def _run(bounds: EventTimeBounds, events: list[Event], size: int) -> list[str]:
    """The event_ids ``bounds`` refuses, fed ``size`` events at a time."""
    refused = []
    for start in range(0, len(events), size):
        batch = events[start : start + size]
        _, out = bounds.check(batch)
        refused += [batch[i].event_id for i, _ in out]
    return refused


def _bounds(clock: float | None = None, **settings: float) -> EventTimeBounds:
    return EventTimeBounds(EventSettings(**settings), None if clock is None else lambda: clock)


def test_strays_anywhere_are_refused_and_do_not_move_the_stream() -> None:
    clean = _traffic(2_000, seed=3)
    # The first two events of the stream are strays: the start comes from the batch.
    lines, planted = _plant(clean, {0: FUTURE, 1: PAST, 700: FUTURE, 1_300: PAST, 1_999: FUTURE})
    bounds = _bounds()
    assert _run(bounds, _events(lines), 200) == [orjson.loads(s)["event_id"] for s in planted]
    assert bounds.progress == max(e.ts.timestamp() for e in _events(clean))


@pytest.mark.parametrize("size", [1, 2, 3, 50, 1_000])
def test_decisions_do_not_depend_on_the_batch_size(size: int) -> None:
    clean = _traffic(1_500, seed=4)
    lines, planted = _plant(clean, {10: FUTURE, 400: PAST, 406: FUTURE, 1_200: PAST})
    events = _events(lines)
    # A quiet gap of three days (within max_ahead_s) in the middle is followed at once.
    gap = timedelta(days=3)
    events = [
        e if i < 800 or e.event_id.startswith("stray") else _shifted(e, gap)
        for i, e in enumerate(events)
    ]
    refused = _run(_bounds(), events, size)
    assert refused == [orjson.loads(s)["event_id"] for s in planted]


def _shifted(event: Event, by: timedelta) -> Event:
    return msgspec.structs.replace(event, ts=event.ts + by)


def test_the_stream_follows_a_gap_longer_than_max_ahead() -> None:
    before = _events(_traffic(300, seed=5))
    after = [_shifted(e, timedelta(days=30)) for e in _events(_traffic(300, seed=6))]
    bounds = _bounds()
    assert _run(bounds, before, 100) == []
    assert _run(bounds, after, 100) == []  # most of each batch agrees: the stream moved
    # One event alone cannot carry a jump; the second one confirms it.
    later = [_shifted(e, timedelta(days=60)) for e in _events(_traffic(5, seed=7))]
    assert _run(bounds, later, 1) == [later[0].event_id]
    assert bounds.progress == later[-1].ts.timestamp()


def test_late_events_within_max_past_are_accepted() -> None:
    events = _events(_traffic(100, seed=8))
    late = [_shifted(events[0], -timedelta(days=d)) for d in (6.5, 7.5)]
    bounds = _bounds()
    _, out = bounds.check([*events, *late])
    assert [i for i, _ in out] == [len(events) + 1]
    assert "events.max_past_s" in out[0][1] and "behind the stream" in out[0][1]


def test_live_a_backlog_far_behind_the_clock_is_accepted() -> None:
    events = _events(_traffic(600, seed=9))
    now = events[-1].ts.timestamp() + 30 * DAY  # the worker reads a month-old backlog
    live = _bounds(clock=now)
    assert _run(live, events[:300], 100) == []
    # One event stamped by the clock in the middle of it is far ahead of the stream.
    stamped_now = _shifted(events[300], timedelta(days=30))
    _, out = live.check([*events[301:400], stamped_now])
    assert [i for i, _ in out] == [99]
    assert "events.max_ahead_s" in out[0][1] and "ahead of the stream" in out[0][1]


def test_live_an_event_ahead_of_the_clock_is_refused() -> None:
    events = _events(_traffic(100, seed=10))
    now = events[-1].ts.timestamp()
    skewed = [_shifted(events[-1], timedelta(seconds=s)) for s in (299, 301)]
    _, out = _bounds(clock=now).check([*events, *skewed])
    assert [i for i, _ in out] == [101]
    assert "events.max_future_s" in out[0][1] and "worker's clock" in out[0][1]
    # Replay has no clock: the same events are within the stream's bounds.
    assert _bounds().check([*events, *skewed])[1] == []


# -- through replay ------------------------------------------------------------------------


def _replay_settings(data_dir: Path) -> Settings:
    # Toxicity (a linear model shipped in a wheel) with a rate and a tight event-time
    # budget: every decision kind occurs, and a budget moved by a stray would show.
    return load_settings(
        overrides={
            "store": {"data_dir": str(data_dir)},
            "judge": {"enabled": False},
            "embedding": {"enabled": False},
            "toxicity": {"enabled": True, "backend": "profanity-check"},
            "sampling": {
                "rates": {"toxicity": 0.4},
                "budget_per_minute": {"toxicity": 6.0},
                "budget_burst": {"toxicity": 3.0},
            },
            "kafka": {"batch_max": 200},
            "log_level": "WARNING",
        }
    )


def _query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    store = EmbeddedStore(data_dir)
    try:
        return store.query(sql)
    finally:
        store.close()


_DECISIONS = "SELECT event_id, scorer, decision, reason FROM vigil.decisions FINAL ORDER BY ALL"
_ALERTS = (
    "SELECT rule, segment_key, state, ts, fired_at FROM vigil.alerts FINAL "
    "ORDER BY rule, segment_key, ts, state"
)
_DEAD = "SELECT position, reason, detail, raw_b64 FROM vigil.dead_letters FINAL ORDER BY ALL"


def test_replay_dead_letters_strays_and_the_rest_is_unchanged(tmp_path: Path) -> None:
    clean = _traffic(3_000, seed=11)
    future_30d = (datetime(2026, 11, 22, 8, tzinfo=UTC) + timedelta(days=30)).isoformat()
    strays = {0: FUTURE, 1: PAST, 700: future_30d, 1_500: PAST, 2_200: FUTURE, 2_999: FUTURE}
    lines, planted = _plant(clean, strays)
    base = asyncio.run(
        replay_file(_replay_settings(tmp_path / "a"), _write(tmp_path / "a.jsonl", clean))
    )
    run = asyncio.run(
        replay_file(_replay_settings(tmp_path / "b"), _write(tmp_path / "b.jsonl", lines))
    )
    before, after = base.as_dict(), run.as_dict()

    assert after["rejected_by_reason"] == {OUT_OF_RANGE: len(planted)}
    assert (after["stored"], before["stored"], before["rejected"]) == (3_000, 3_000, 0)
    assert after["timers_fired"] == before["timers_fired"]
    assert before["timers_fired"]["alerts"] > 10

    decisions = _query(tmp_path / "b", _DECISIONS)
    assert decisions == _query(tmp_path / "a", _DECISIONS)
    assert {"scored", "sampled_out", "over_budget"} <= {d["decision"] for d in decisions}
    assert after["decisions"] == before["decisions"]

    alerts = _query(tmp_path / "b", _ALERTS)
    assert alerts == _query(tmp_path / "a", _ALERTS)
    assert any(a["fired_at"] for a in alerts)

    dead = _query(tmp_path / "b", _DEAD)
    assert sorted(base64.b64decode(d["raw_b64"]) for d in dead) == sorted(planted)
    assert {d["reason"] for d in dead} == {OUT_OF_RANGE}
    by_line = {int(d["position"]): d["detail"] for d in dead}
    for i, ts in strays.items():
        line = i + 1 + sorted(strays).index(i)  # 1-based, counting the strays before it
        setting = "events.max_past_s" if ts == PAST else "events.max_ahead_s"
        assert setting in by_line[line], by_line[line]


# -- through the live worker ---------------------------------------------------------------


@pytest.mark.integration
def test_worker_dead_letters_strays_and_alerts_still_fire(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object
) -> None:
    clean = _traffic(4_000, seed=5)
    an_hour_ahead = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    strays = {0: FUTURE, 300: PAST, 2_000: an_hour_ahead, 3_500: PAST, 3_999: FUTURE}
    lines, planted = _plant(clean, strays)

    live = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "live"))
    ensure_topics(live)
    sent = produce_lines(live, lines)
    assert sent["sent"] == len(lines) and sent["failed"] == 0
    worker = start_worker(live)  # type: ignore[operator]
    wait_consumed(live, sent["end_offsets"], worker)  # committed past every stray
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()

    records = read_topic(live, live.kafka.dlq_topic, len(planted))
    assert sorted(r.value for r in records) == sorted(planted)
    for record in records:
        headers = dict(record.headers)
        assert headers["vigil.reason"] == OUT_OF_RANGE.encode()
        # Live, every future stray is refused by the clock, before the stream's bound.
        past = orjson.loads(record.value)["ts"] == PAST
        setting = b"events.max_past_s" if past else b"events.max_future_s"
        assert setting in headers["vigil.detail"], headers["vigil.detail"]

    [events] = _query(tmp_path / "live", "SELECT count() AS n FROM vigil.events FINAL")
    assert int(events["n"]) == 4_000
    dead = _query(tmp_path / "live", _DEAD)
    assert sorted(base64.b64decode(d["raw_b64"]) for d in dead) == sorted(planted)
    assert {d["reason"] for d in dead} == {OUT_OF_RANGE}

    # The same traffic without the strays, replayed: the live event-time jobs ran exactly
    # as they do there, and the incidents after the strays were alerted on.
    replayed = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "replay"))
    asyncio.run(replay_file(replayed, _write(tmp_path / "clean.jsonl", clean)))
    alerts = _query(tmp_path / "live", _ALERTS)
    assert alerts == _query(tmp_path / "replay", _ALERTS)
    fired = {(a["rule"], a["segment_key"]) for a in alerts if a["fired_at"]}
    assert ("negative_feedback_up", f"model_version={BAD_VERSION}") in fired, fired
