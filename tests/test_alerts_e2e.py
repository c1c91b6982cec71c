"""End to end: `replay_file` over generated traffic with incidents, heuristics and feedback only.

The model scorers are off, so these are the rules that must work without any model:
negative feedback and the combined helpfulness rule (feedback + cheap checks) for the
regressed checkpoint, and PII incidents from the heuristics. Nothing may fire on the
clean part, and a second replay into the same store must not page again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.listing import list_alerts
from monitor.config import Settings, load_settings
from monitor.replay import replay_file
from monitor.store import open_store
from monitor.times import parse_optional_ts
from vigil.traffic import BAD_VERSION, TrafficSpec, demo_incidents, generate_lines

N = 4000


def _settings(tmp_path: Path, name: str) -> Settings:
    off = {"enabled": False}
    return load_settings(
        overrides={
            "store": {"data_dir": str(tmp_path / name)},
            "judge": off,
            "toxicity": off,
            "embedding": off,
        }
    )


def _write(path: Path, spec: TrafficSpec) -> Path:
    with path.open("wb") as handle:
        for line in generate_lines(spec):
            handle.write(line + b"\n")
    return path


def _alerts(settings: Settings) -> list[dict[str, Any]]:
    store = open_store(settings)
    try:
        return list_alerts(store, states=("pending", "firing", "resolved"))
    finally:
        store.close()


@pytest.fixture(scope="module")
def incident_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrafficSpec, Settings, Path]:
    tmp = tmp_path_factory.mktemp("alerts_e2e")
    spec = TrafficSpec(n=N, seed=5)
    spec.incidents = demo_incidents(spec.start, spec.interval_s, N)
    path = _write(tmp / "traffic.jsonl", spec)
    settings = _settings(tmp, "data")
    asyncio.run(replay_file(settings, path))
    return spec, settings, path


def test_the_right_alerts_fire_in_the_right_segment(
    incident_run: tuple[TrafficSpec, Settings, Path],
) -> None:
    spec, settings, _ = incident_run
    onset = {inc.kind: inc.start for inc in spec.incidents}
    fired = [a for a in _alerts(settings) if a["fired_at"]]
    by_rule = {(a["rule"], a["segment_key"]): a for a in fired}

    for rule in ("helpfulness_drop", "negative_feedback_up"):
        alert = by_rule[(rule, f"model_version={BAD_VERSION}")]
        fired_at = parse_optional_ts(alert["fired_at"])
        assert fired_at is not None
        # Within 20 event minutes (600 events, ~55 of them rated on the canary) of onset.
        assert onset["regression"] <= fired_at <= onset["regression"] + timedelta(minutes=20)
        assert alert["command"] == f"vigil alerts --examples {alert['alert_id']}"
        assert "negative feedback" in alert["message"]
        assert alert["confidence"] > 0.99

    pii = by_rule[("safety_incidents_up", "risk_type=pii")]
    pii_at = parse_optional_ts(pii["fired_at"])
    assert pii_at is not None and onset["pii"] <= pii_at <= onset["pii"] + timedelta(minutes=10)

    # Nothing about the good checkpoint, and nothing at all before the first incident.
    first = min(onset.values())
    assert not [a for a in fired if "ckpt-2026-11-01" in a["segment_key"]]
    assert all((parse_optional_ts(a["fired_at"]) or first) >= first for a in fired)
    assert not [a for a in _alerts(settings) if (parse_optional_ts(a["ts"]) or first) < first]


def test_failing_examples_query_lists_the_canary(
    incident_run: tuple[TrafficSpec, Settings, Path],
) -> None:
    _, settings, _ = incident_run
    store = open_store(settings)
    try:
        alert = next(a for a in list_alerts(store) if a["rule"] == "negative_feedback_up")
        rows = store.query(alert["query"])
    finally:
        store.close()
    assert rows and {r["model_version"] for r in rows} == {BAD_VERSION}


def test_replaying_again_does_not_page_again(
    incident_run: tuple[TrafficSpec, Settings, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, settings, path = incident_run
    before = _alerts(settings)
    capsys.readouterr()
    asyncio.run(replay_file(settings, path))
    printed = capsys.readouterr().out
    assert "[FIRING" not in printed and "[RESOLVED" not in printed
    assert {a["alert_id"] for a in _alerts(settings)} == {a["alert_id"] for a in before}


def test_clean_traffic_raises_nothing(tmp_path: Path) -> None:
    spec = TrafficSpec(n=N, seed=6)
    settings = _settings(tmp_path, "clean")
    asyncio.run(replay_file(settings, _write(tmp_path / "clean.jsonl", spec)))
    assert _alerts(settings) == []
