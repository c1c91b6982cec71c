"""One incident pages once: a segment that stops sending events must not fire again.

Through `vigil replay` with the default rules: a canary checkpoint regresses, then gets
no more traffic while the rest of the stream goes on for hours of event time. Its alert
fires once and resolves; the old evidence still inside the test window must not raise it
again when the cooldown ends. The opposite must still work: a canary that recovers and
then regresses again, with new events, is a new incident and pages again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.fixtures.alert_streams import (
    config_file,
    minutes_in,
    replay,
    transitions,
    ts_of,
    write_events,
)
from vigil.traffic import BAD_VERSION, Incident, TrafficSpec, generate_events

CANARY = f"model_version={BAD_VERSION}"
#: The default rules that follow a checkpoint's quality.
RULES = ("helpfulness_drop", "negative_feedback_up")
STEP_S = 3.0


def _spec(minutes: float, regressions: list[tuple[float, float]]) -> TrafficSpec:
    spec = TrafficSpec(n=int(minutes * 60 / STEP_S), interval_s=STEP_S, seed=11)
    at = spec.start
    spec.incidents = [
        Incident("regression", at + timedelta(minutes=a), at + timedelta(minutes=b), 0.3)
        for a, b in regressions
    ]
    return spec


def _canary_rows(tmp: Path, rule: str) -> list[dict[str, Any]]:
    return [r for r in transitions(tmp) if r["rule"] == rule and r["segment_key"] == CANARY]


def _fired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["state"] == "firing"]


def test_a_canary_that_went_quiet_fires_once(tmp_path: Path) -> None:
    # The canary serves 30% of traffic from minute 60 to 100, then is rolled back; the
    # stream goes on for almost four more hours (the rules' window is four hours).
    spec = _spec(330, [(60, 100)])
    events = list(generate_events(spec))
    canary = [e for e in events if e["model_version"] == BAD_VERSION]
    assert canary and (ts_of(events[-1]) - ts_of(canary[-1])) > timedelta(hours=3)
    done = replay(config_file(tmp_path), write_events(tmp_path / "t.jsonl", events))

    last = ts_of(canary[-1])
    for rule in RULES:
        rows = _canary_rows(tmp_path, rule)
        fired = _fired(rows)
        assert len(fired) == 1, rows
        assert fired[0]["notified"] == 1
        resolved = [r for r in rows if r["state"] == "resolved"]
        assert resolved, rows  # no traffic is no evidence: the alert resolves
        after = [r for r in rows if r["ts"] > resolved[0]["ts"]]
        assert not [r for r in after if r["state"] in ("pending", "firing")], rows
        assert all(r["ts"] > last for r in resolved)
    paged = [line for line in done.stdout.splitlines() if "[FIRING" in line and CANARY in line]
    assert len(paged) == len(RULES), paged


def _relabelled(spec: TrafficSpec, lo: float, hi: float) -> Iterator[dict[str, Any]]:
    """The stream, with the canary checkpoint back (fixed: good answers, the usual
    feedback) on the same share of traffic between minutes ``lo`` and ``hi``."""
    rng = random.Random(spec.seed + 2)
    share = spec.incidents[0].share
    for event in generate_events(spec):
        if lo <= minutes_in(spec.start, event) < hi and rng.random() < share:
            event["model_version"] = BAD_VERSION
        yield event


def test_a_canary_that_regresses_again_with_new_events_pages_again(tmp_path: Path) -> None:
    spec = _spec(300, [(60, 100), (220, 260)])
    events = list(_relabelled(spec, 100, 220))
    replay(config_file(tmp_path), write_events(tmp_path / "t.jsonl", events))

    second = spec.incidents[1].start
    for rule in RULES:
        rows = _canary_rows(tmp_path, rule)
        fired = _fired(rows)
        assert len(fired) == 2, rows
        assert all(r["notified"] == 1 for r in fired)
        assert len({r["alert_id"] for r in fired}) == 2
        first_end = [r for r in rows if r["state"] == "resolved" and r["ts"] < fired[1]["ts"]]
        assert first_end, rows  # the first incident ended before the second began
        assert fired[0]["ts"] < second <= fired[1]["ts"]
