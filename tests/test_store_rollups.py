"""Per-minute rollups: exact against an aggregate computed here in Python, idempotent,
closed minutes only, and wired as an event-time timer."""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from monitor.assembly import TIMERS
from monitor.checks import CheckResult, Heuristics
from monitor.config import Settings
from monitor.events import Event, parse_event, parse_feedback
from monitor.pipeline import rows as R
from monitor.store.base import Store
from monitor.store.rollups import EVERY_S, read_rollups, refresh_rollups
from tests.fixtures import rows as fixture_rows
from vigil.traffic import Incident, TrafficSpec, generate_events

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NOW = "2026-11-22T09:00:00+00:00"


def _load(
    store: Store, settings: Settings
) -> tuple[list[Event], dict[str, CheckResult], dict[str, int]]:
    """Five minutes of traffic with incidents, stored twice (redelivery), plus late feedback."""
    spec = TrafficSpec(
        n=150,
        start=START,
        interval_s=2.0,
        seed=5,
        feedback_share=0.4,
        incidents=[
            Incident("pii", START, START + timedelta(minutes=5), 0.2),
            Incident("regression", START + timedelta(minutes=2), START + timedelta(minutes=5), 0.5),
        ],
    )
    events = [parse_event(orjson.dumps(e)) for e in generate_events(spec)]
    heuristics = Heuristics(settings.heuristics)
    checks = {e.event_id: heuristics.check(e) for e in events}
    for _ in range(2):
        store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
        store.insert("checks", [fixture_rows.check_row(e, checks[e.event_id]) for e in events])
        feedback = [fixture_rows.inline_feedback_row(e, NOW) for e in events if e.feedback]
        store.insert("feedback", feedback)
    ratings: dict[str, int] = {e.event_id: e.feedback.rating for e in events if e.feedback}
    # Late feedback, received after the inline one: it wins, and counts in the event's minute.
    late = [
        parse_feedback(
            orjson.dumps({"event_id": e.event_id, "ts": "2026-11-22T12:00:00Z", "rating": -1})
        )
        for e in events[::7]
    ]
    store.insert("feedback", [R.late_feedback_row(f, "2026-11-22T12:00:01+00:00") for f in late])
    ratings.update({f.event_id: -1 for f in late})
    return events, checks, ratings


def _quantile_exact(values: list[float], level: float) -> float | None:
    # ClickHouse's quantileExact: the element at index floor(level * n) of the sorted values.
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.floor(level * len(ordered)))]


def _expected(
    events: list[Event], checks: dict[str, CheckResult], ratings: dict[str, int], until: datetime
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], list[Event]] = defaultdict(list)
    for e in events:
        if e.ts < until:
            minute = e.ts.astimezone(UTC).replace(second=0, microsecond=0)
            groups[
                (minute.strftime("%Y-%m-%d %H:%M:%S"), e.model, e.model_version, e.route)
            ].append(e)
    rows = []
    for key in sorted(groups):
        members = groups[key]
        latencies = [e.response.latency_ms for e in members if e.response.latency_ms is not None]
        failed = Counter(kind for e in members for kind in checks[e.event_id].failed)
        rated = [ratings[e.event_id] for e in members if e.event_id in ratings]
        rows.append(
            {
                "minute": key[0],
                "model": key[1],
                "model_version": key[2],
                "route": key[3],
                "events": len(members),
                "failed_events": sum(1 for e in members if checks[e.event_id].failed),
                "failed_checks": dict(failed),
                "latency_p50_ms": _quantile_exact(latencies, 0.5),
                "latency_p95_ms": _quantile_exact(latencies, 0.95),
                "latency_avg_ms": sum(latencies) / len(latencies) if latencies else None,
                "prompt_tokens": sum(e.response.prompt_tokens or 0 for e in members),
                "completion_tokens": sum(e.response.completion_tokens or 0 for e in members),
                "feedback": len(rated),
                "negative_feedback": sum(1 for r in rated if r < 0),
                "positive_feedback": sum(1 for r in rated if r > 0),
            }
        )
    return rows


def _normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # JSON output quotes 64-bit integers; compare numbers as numbers.
    out = []
    for row in rows:
        fixed = dict(row)
        for key in (
            "events",
            "failed_events",
            "prompt_tokens",
            "completion_tokens",
            "feedback",
            "negative_feedback",
            "positive_feedback",
        ):
            fixed[key] = int(row[key])
        fixed["failed_checks"] = {k: int(v) for k, v in row["failed_checks"].items()}
        out.append(fixed)
    return out


def test_rollups_match_a_direct_aggregate(any_store: Store, settings: Settings) -> None:
    events, checks, ratings = _load(any_store, settings)
    until = START + timedelta(minutes=4, seconds=30)  # minute 4 is still open
    refresh_rollups(any_store, until, since=START)
    got = _normalise(read_rollups(any_store, START, START + timedelta(hours=1)))
    want = _expected(events, checks, ratings, START + timedelta(minutes=4))
    assert {row["minute"] for row in got} == {f"2026-11-22 08:0{m}:00" for m in range(4)}
    assert [{k: v for k, v in r.items() if k != "latency_avg_ms"} for r in got] == [
        {k: v for k, v in r.items() if k != "latency_avg_ms"} for r in want
    ]
    for g, w in zip(got, want, strict=True):
        assert g["latency_avg_ms"] == pytest.approx(w["latency_avg_ms"])
    assert sum(r["failed_checks"].get("pii", 0) for r in got) > 0  # the incident shows up
    assert {r["model_version"] for r in got} == {
        e.model_version for e in events if e.ts < START + timedelta(minutes=4)
    }


def test_refresh_is_idempotent_and_picks_up_late_feedback(
    any_store: Store, settings: Settings
) -> None:
    events, _, _ = _load(any_store, settings)
    end = START + timedelta(minutes=5)
    refresh_rollups(any_store, end, since=START)
    first = _normalise(read_rollups(any_store, START, end))
    refresh_rollups(any_store, end, since=START)
    assert _normalise(read_rollups(any_store, START, end)) == first
    # More late feedback for the first minute: the next refresh (within the late window) counts it.
    target = next(e for e in events if e.ts < START + timedelta(minutes=1) and e.feedback is None)
    feedback = parse_feedback(
        orjson.dumps({"event_id": target.event_id, "ts": "2026-11-22T08:06:00Z", "rating": -1})
    )
    any_store.insert("feedback", [R.late_feedback_row(feedback, "2026-11-22T08:06:00+00:00")])
    refresh_rollups(any_store, end)  # default window: the last 15 minutes
    after = _normalise(read_rollups(any_store, START, end))
    segment = ("2026-11-22 08:00:00", target.model_version, target.route)

    def negatives(rows: list[dict[str, Any]]) -> int:
        return sum(
            r["negative_feedback"]
            for r in rows
            if (r["minute"], r["model_version"], r["route"]) == segment
        )

    assert negatives(after) == negatives(first) + 1
    assert len(after) == len(first)


def test_rollup_timer_is_registered_and_runs_in_event_time(
    any_store: Store, settings: Settings
) -> None:
    events, checks, ratings = _load(any_store, settings)
    factory = TIMERS["rollups"]
    made = factory(settings, any_store)
    assert made is not None
    every_s, fn = made
    assert every_s == EVERY_S == 60.0

    async def replay_like() -> None:
        # What the pipeline does in a replay: a burst of on-grid firings, then one at the
        # watermark. Whichever firings the timer coalesces, the end state is exact.
        for minute in (1, 2, 3, 4):
            await fn(START + timedelta(minutes=minute))  # type: ignore[misc]
        await fn(START + timedelta(minutes=4, seconds=58))  # type: ignore[misc]

    asyncio.run(replay_like())
    got = _normalise(read_rollups(any_store, START, START + timedelta(hours=1)))
    want = _expected(events, checks, ratings, START + timedelta(minutes=4))
    assert {r["minute"] for r in got} == {f"2026-11-22 08:0{m}:00" for m in range(4)}
    assert [r["events"] for r in got] == [r["events"] for r in want]
    assert [r["negative_feedback"] for r in got] == [r["negative_feedback"] for r in want]
