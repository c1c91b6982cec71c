"""A topic surge through the real CLI with real (MiniLM) prompt embeddings: the topic alert
says what changed, fires during the surge only, and the drift job and the alert are back
to normal soon after the traffic is.

The stream: clean traffic from the start (the rolling reference holds only minutes of it at
first), a surge of an unseen topic (crypto questions, 40% of prompts) for an hour, then
well over an hour of clean traffic again. `vigil replay` runs the default rules and drift
settings with the embedding scorer on every event; the judge and toxicity models are off.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from monitor.alerts.rules import load_rules
from monitor.drift.reports import list_reports
from tests.fixtures.alert_streams import open_data, vigil, write_events
from vigil.traffic import (
    _SURGE_PROMPTS,
    JSON_ROUTE,
    JSON_SCHEMA,
    Incident,
    TrafficSpec,
    generate_events,
)

pytestmark = pytest.mark.integration

INTERVAL_S = 6.0
#: Minutes of event time: the surge's span and the stream's end.
SURGE = (80, 140)
END = 240
#: The targets: reports clean, and the alert resolved, this long after the surge ends.
SETTLE = timedelta(minutes=30)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[datetime, Path]:
    tmp = tmp_path_factory.mktemp("drift_incident")
    spec = TrafficSpec(n=int(END * 60 / INTERVAL_S), interval_s=INTERVAL_S, seed=11)
    at = spec.start
    spec.incidents = [
        Incident(
            "topic_surge", at + timedelta(minutes=SURGE[0]), at + timedelta(minutes=SURGE[1]), 0.5
        )
    ]
    events = write_events(tmp / "traffic.jsonl", generate_events(spec))
    settings: dict[str, Any] = {
        "store": {"data_dir": str(tmp / "data")},
        "heuristics": {"json_routes": {JSON_ROUTE: JSON_SCHEMA}},
        "judge": {"enabled": False},
        "toxicity": {"enabled": False},
        "sampling": {"rates": {"embedding": 1.0}},
    }
    config = tmp / "vigil.yaml"
    config.write_text(yaml.safe_dump(settings))
    done = vigil(config, "replay", str(events))
    assert done.returncode == 0, done.stderr[-3000:]
    return at, tmp


def _alerts(tmp: Path) -> list[dict[str, Any]]:
    store = open_data(tmp)
    try:
        return store.query(
            "SELECT rule, state, ts, message, details FROM vigil.alerts FINAL "
            "WHERE rule = 'topic_drift' ORDER BY ts"
        )
    finally:
        store.close()


def _reports(tmp: Path) -> list[dict[str, Any]]:
    store = open_data(tmp)
    try:
        return sorted(list_reports(store, model_version="", limit=10_000), key=lambda r: r["ts"])
    finally:
        store.close()


def _minute(start: datetime, ts: Any) -> float:
    return (datetime.fromisoformat(str(ts)).replace(tzinfo=start.tzinfo) - start) / timedelta(
        minutes=1
    )


def test_the_alert_names_the_surge_and_fires_during_it_only(
    run: tuple[datetime, Path],
) -> None:
    start, tmp = run
    alerts = _alerts(tmp)
    fired = [a for a in alerts if a["state"] == "firing"]
    assert fired, alerts
    # Nothing before the surge, the start of the stream included (a reference of minutes).
    assert all(_minute(start, a["ts"]) >= SURGE[0] for a in alerts), alerts
    first = fired[0]
    assert _minute(start, first["ts"]) < SURGE[1]
    message = first["message"]
    # The page names the cluster: its terms, its shares, the answers, example prompts.
    assert any(term in message for term in ("crypto", "bitcoin", "wallet", "memecoin")), message
    assert "of prompts in the reference" in message and "refused" in message
    surge_examples = [p for p in _SURGE_PROMPTS if p[:200] in message]
    assert len(surge_examples) >= 2, message
    details = orjson.loads(first["details"])
    cluster = details["cluster"]
    assert len(cluster["examples"]) == 3 and all(len(e) <= 200 for e in cluster["examples"])
    assert cluster["cur_share"] > 2 * cluster["ref_share"]
    assert cluster["terms"] and cluster["refusal"]["window"] is not None


def test_back_to_normal_soon_after_the_surge(run: tuple[datetime, Path]) -> None:
    start, tmp = run
    reports = _reports(tmp)
    surge_end = SURGE[1]
    settled = [r for r in reports if _minute(start, r["ts"]) >= surge_end + 30]
    assert len(settled) >= 12  # over an hour of reports after the surge has settled
    assert not [r["ts"] for r in settled if r["drifted"]]
    # The reference of those reports leaves the surge's flagged windows out.
    flagged = [r for r in reports if r["drifted"]]
    assert flagged and all(SURGE[0] <= _minute(start, r["ts"]) < surge_end + 30 for r in flagged)

    resolve = next(r for r in load_rules() if r.name == "topic_drift").resolve_minutes
    alerts = _alerts(tmp)
    assert alerts[-1]["state"] == "resolved", alerts
    resolved_at = _minute(start, alerts[-1]["ts"])
    assert resolved_at <= surge_end + SETTLE / timedelta(minutes=1) + resolve, resolved_at
    assert [a["state"] for a in alerts].count("firing") == 1


def test_no_test_against_a_reference_of_minutes(run: tuple[datetime, Path]) -> None:
    start, tmp = run
    reports = _reports(tmp)
    early = [r for r in reports if _minute(start, r["ts"]) < SURGE[0]]
    short = [r for r in early if r["reasons"] == ["not_enough_reference"]]
    tested = [r for r in early if r["reasons"] != ["not_enough_reference"]]
    # The first reports say the reference is too small; the rest of the clean start is tested
    # and clean.
    assert short and _minute(start, short[0]["ts"]) < _minute(start, tested[0]["ts"])
    assert tested and not any(r["drifted"] for r in tested)
