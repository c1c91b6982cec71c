"""The drift job against the real (embedded chDB) store, the CLI, and the timer via replay.

Embeddings are inserted directly as rows (synthetic vectors around known topic centres):
that tests the drift job honestly without a model. One test at the end runs the real
embedding scorer through `vigil replay`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.config import Settings, load_settings
from monitor.drift.baseline import pin_baseline, read_baselines, unpin_baseline
from monitor.drift.job import DriftJob
from monitor.drift.reports import list_reports, render_reports
from monitor.drift.vectors import normalize_rows
from monitor.errors import ConfigError
from monitor.store.embedded import EmbeddedStore

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DIM = 32
SURGE = 6  # topic index never seen in the reference
DRIFT = {
    "window_minutes": 30.0,
    "every_minutes": 5.0,
    "reference_minutes": 120.0,
    "min_window_events": 50,
    "permutations": 100,
    "clusters": 6,
    "rff_features": 256,
}


def _settings(data_dir: Path, **drift: Any) -> Settings:
    # Small ingest batches: the watermark (and so each timer) advances batch by batch.
    return load_settings(
        overrides={
            "store": {"data_dir": str(data_dir)},
            "drift": {**DRIFT, **drift},
            "kafka": {"batch_max": 60},
        }
    )


def _centres() -> np.ndarray:
    return normalize_rows(np.random.default_rng(0).standard_normal((7, DIM)))


def _stream(
    minutes: float, surge_from: float, *, step_s: float = 10.0, canary: bool = False
) -> list[tuple[str, datetime, int, str]]:
    """(event_id, ts, topic, model_version): 6 topics, a 40% surge of topic 6 after surge_from."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(int(minutes * 60 / step_s)):
        ts = T0 + timedelta(seconds=i * step_s)
        minute = i * step_s / 60
        topic = SURGE if minute >= surge_from and rng.random() < 0.4 else int(rng.integers(6))
        version = "ckpt-b" if canary and minute >= 120 and rng.random() < 0.5 else "ckpt-a"
        out.append((f"ev-{i:06d}", ts, topic, version))
    return out


def _rows(stream: list[tuple[str, datetime, int, str]]) -> dict[str, list[dict[str, Any]]]:
    rng = np.random.default_rng(2)
    centres = _centres()
    now = T0.isoformat()
    emb, events, scores = [], [], []
    for event_id, ts, topic, version in stream:
        vector = centres[topic] + 0.25 * rng.standard_normal(DIM)
        base = {"event_id": event_id, "ts": ts.isoformat(), "model": "m", "model_version": version}
        emb.append(
            {
                **base,
                "route": "r",
                "kind": "prompt",
                "embedder": "test-emb",
                "vector": [float(v) for v in vector],
                "created_at": now,
            }
        )
        events.append({**base, "prompt": f"topic {topic} question {event_id}", "ingested_at": now})
        if int(event_id[-6:]) % 3 == 0:  # a third of events judged; the surge topic answered worse
            scores.append(
                {
                    **base,
                    "route": "r",
                    "scorer": "judge",
                    "scorer_version": "j1",
                    "name": "helpfulness",
                    "value": 2.0 if topic == SURGE else 4.5,
                    "label": "",
                    "created_at": now,
                }
            )
    return {"embeddings": emb, "events": events, "scores": scores}


def _load(store: EmbeddedStore, stream: list[tuple[str, datetime, int, str]]) -> None:
    for table, rows in _rows(stream).items():
        store.insert(table, rows)


@pytest.fixture
def surge_store(tmp_path: Path) -> Iterator[tuple[Settings, EmbeddedStore]]:
    """3 h of traffic: clean until 10:30, then a 40% surge of an unseen topic."""
    settings = _settings(tmp_path / "data")
    store = EmbeddedStore(settings.store.data_dir, settings.store.database)
    store.migrate()
    _load(store, _stream(180, surge_from=150))
    yield settings, store
    store.close()


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_reports_are_stored_and_read_back(surge_store: tuple[Settings, EmbeddedStore]) -> None:
    settings, store = surge_store
    job = DriftJob(settings.drift, store)
    clean = job.run(_at(150))
    surged = job.run(_at(180))
    assert [r["model_version"] for r in clean + surged] == ["", ""]
    assert clean[0]["drifted"] == 0 and clean[0]["reasons"] == []
    assert surged[0]["drifted"] == 1 and surged[0]["new_topic"] == 1
    assert set(surged[0]["reasons"]) >= {"mmd", "new_topic"}

    rows = list_reports(store)
    assert [r["ts"][:16] for r in rows] == ["2026-11-22 11:00", "2026-11-22 10:30"]
    latest = rows[0]
    assert latest["reference_kind"] == "rolling"
    assert latest["reference_start"].startswith("2026-11-22 08:30")
    assert latest["window_start"].startswith("2026-11-22 10:30")
    assert latest["n_window"] == 180 and latest["n_reference"] == 720
    assert latest["mmd_p_value"] < latest["alpha_test"] < 1e-4
    assert latest["new_topic_rate"] > 0.3 > latest["new_topic_base_rate"]

    # The new-topic group and the most shifted cluster both carry the surge: examples are
    # surge prompts and the judge's helpfulness fell there.
    groups = {c["label"]: c for c in latest["top_clusters"]}
    new = groups["new_topic"]
    assert new["examples"] and all(e.startswith(f"topic {SURGE} ") for e in new["examples"])
    assert new["judge"]["helpfulness"]["window"] < 2.5  # mostly surge events (judged 2.0)
    top = latest["top_clusters"][0]  # clusters that grew come first
    assert top["cur_share"] > top["ref_share"]
    assert top["judge"]["helpfulness"]["delta"] < 0
    assert "DRIFT" in render_reports(rows)
    assert list_reports(store, model_version="other") == []


def test_pinned_baseline_is_fitted_once_and_unpinned(
    surge_store: tuple[Settings, EmbeddedStore],
) -> None:
    settings, store = surge_store
    baseline = pin_baseline(settings.drift, store, _at(0), _at(120))
    assert baseline.n == 720 and read_baselines(store)[""].end == _at(120)
    job = DriftJob(settings.drift, store)
    reports = [job.run(_at(m))[0] for m in (140, 145, 150)]
    assert job.fits == 1  # the reference's k-means and features came from the cache
    assert {r["reference_kind"] for r in reports} == {"pinned"}
    assert len({r["reference_id"] for r in reports}) == 1
    assert not any(r["drifted"] for r in reports)
    assert unpin_baseline(store) and read_baselines(store) == {}
    assert job.run(_at(150))[0]["reference_kind"] == "rolling"


def test_pin_defaults_and_refusals(surge_store: tuple[Settings, EmbeddedStore]) -> None:
    settings, store = surge_store
    baseline = pin_baseline(settings.drift, store)  # the last reference_minutes of data
    assert baseline.end == _at(180) - timedelta(seconds=10) + timedelta(milliseconds=1)
    assert baseline.start == baseline.end - timedelta(minutes=120)
    with pytest.raises(ConfigError, match="holds 0 prompt embeddings"):
        pin_baseline(settings.drift, store, _at(600), _at(700))
    with pytest.raises(ConfigError, match="not before"):
        pin_baseline(settings.drift, store, _at(10), _at(5))


def test_same_events_give_identical_reports(surge_store: tuple[Settings, EmbeddedStore]) -> None:
    settings, store = surge_store

    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]

    first = strip(DriftJob(settings.drift, store).run(_at(175)))
    again = strip(DriftJob(settings.drift, store).run(_at(175)))
    assert first == again


def test_mixed_versions_get_a_report_each(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    store = EmbeddedStore(settings.store.data_dir, settings.store.database)
    try:
        store.migrate()
        _load(store, _stream(180, surge_from=999, canary=True))
        reports = DriftJob(settings.drift, store).run(_at(180))
        assert [r["model_version"] for r in reports] == ["", "ckpt-a", "ckpt-b"]
        assert not any(r["drifted"] for r in reports)
        assert sum(r["n_window"] for r in reports[1:]) == reports[0]["n_window"]
    finally:
        store.close()


def test_too_little_reference_is_reported_not_tested(
    surge_store: tuple[Settings, EmbeddedStore],
) -> None:
    settings, store = surge_store
    job = DriftJob(settings.drift, store)
    # The rolling reference holds only 5 minutes (30 events): no test, and the report says so.
    (short,) = job.run(_at(35))
    assert short["reasons"] == ["not_enough_reference"] and short["drifted"] == 0
    assert short["n_reference"] == 30 and job.fits == 0
    assert "not enough reference" in render_reports(list_reports(store))
    # 290 events over 48 minutes: the span is long enough, the count is not (300).
    assert job.run(_at(78))[0]["reasons"] == ["not_enough_reference"]
    assert job.run(_at(600)) == []  # nothing in the window


def test_cli_lists_reports_and_pins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.cli import main

    settings = _settings(tmp_path / "data")
    store = EmbeddedStore(settings.store.data_dir, settings.store.database)
    store.migrate()
    _load(store, _stream(180, surge_from=150))
    DriftJob(settings.drift, store).run(_at(180))
    store.close()
    base = ["--data-dir", str(tmp_path / "data")]
    assert main([*base, "drift", "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["drifted"] == 1
    assert main([*base, "drift", "--since", "10m"]) == 0
    assert "DRIFT" in capsys.readouterr().out
    frm, to = _at(0).isoformat(), _at(120).isoformat()
    assert main([*base, "baseline", "pin", "--from", frm, "--to", to, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["n"] == 720
    assert main([*base, "baseline", "show"]) == 0
    assert "n=720" in capsys.readouterr().out
    assert main([*base, "baseline", "pin", "--from", "yesterday"]) == 2


def _write_traffic(
    path: Path, minutes: float, surge_from: float, step_s: float
) -> list[dict[str, Any]]:
    from vigil.traffic import Incident, TrafficSpec, generate_events

    n = int(minutes * 60 / step_s)
    spec = TrafficSpec(
        n=n,
        start=T0,
        interval_s=step_s,
        seed=5,
        incidents=[Incident("topic_surge", _at(surge_from), _at(minutes), 0.4)],
    )
    events = list(generate_events(spec))
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return events


def test_timer_fires_through_replay_in_event_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift job as a pipeline timer: `replay_file` over events whose embeddings exist."""
    import monitor.assembly
    from monitor.replay import replay_file

    # Only the timer under test (as registered), so the other timers' cost stays out.
    monkeypatch.setattr(monitor.assembly, "TIMERS", {"drift": monitor.assembly.TIMERS["drift"]})

    events = _write_traffic(tmp_path / "t.jsonl", 180, 150, 10.0)
    centres = _centres()
    topic_of = {
        f"support/{t}": i
        for i, t in enumerate(
            ["refunds", "shipping", "account", "billing", "technical", "classify"]
        )
    }
    results = []
    for run in ("a", "b"):
        rng = np.random.default_rng(3)  # the same embeddings in both stores
        settings = _settings(tmp_path / run)
        store = EmbeddedStore(settings.store.data_dir, settings.store.database)
        store.migrate()
        store.insert(
            "embeddings",
            [
                {
                    "event_id": e["event_id"],
                    "ts": e["ts"],
                    "model": e["model"],
                    "model_version": e["model_version"],
                    "kind": "prompt",
                    "embedder": "test-emb",
                    "vector": [
                        float(v)
                        for v in centres[topic_of.get(e["route"], SURGE)]
                        + 0.25 * rng.standard_normal(DIM)
                    ],
                }
                for e in events
            ],
        )
        store.close()
        overrides = {k: {"enabled": False} for k in ("judge", "toxicity", "embedding")}
        settings = settings.model_copy(
            update={k: getattr(settings, k).model_copy(update=v) for k, v in overrides.items()}
        )
        summary = asyncio.run(replay_file(settings, tmp_path / "t.jsonl"))
        assert summary.timers_fired["drift"] >= 30
        store = EmbeddedStore(settings.store.data_dir, settings.store.database)
        rows = list_reports(store, limit=1000)
        store.close()
        results.append([{k: v for k, v in r.items() if k != "created_at"} for r in rows])
    rows = results[0]
    # Reports start once the rolling reference holds data, none drifts before the surge, and
    # the surge is flagged within 15 minutes (90 events at one per 10 s).
    assert rows and all(r["model_version"] == "" for r in rows)
    before = [r for r in rows if r["ts"] < "2026-11-22 10:30"]
    after = [r for r in rows if r["drifted"]]
    assert before and not any(r["drifted"] for r in before)
    assert after and min(r["ts"] for r in after) <= "2026-11-22 10:45:00.000"
    assert results[0] == results[1]  # two replays of the same events: identical reports


@pytest.mark.integration
def test_end_to_end_with_the_real_embedding_scorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated traffic through `replay` with MiniLM embeddings: the surge is found."""
    import monitor.assembly
    from monitor.replay import replay_file

    monkeypatch.setattr(monitor.assembly, "TIMERS", {"drift": monitor.assembly.TIMERS["drift"]})

    _write_traffic(tmp_path / "t.jsonl", 100, 70, 6.0)
    settings = load_settings(
        overrides={
            "store": {"data_dir": str(tmp_path / "data")},
            "judge": {"enabled": False},
            "toxicity": {"enabled": False},
            "sampling": {"rates": {"embedding": 1.0}},
            "kafka": {"batch_max": 60},
            "drift": {**DRIFT, "window_minutes": 20.0, "reference_minutes": 40.0},
        }
    )
    summary = asyncio.run(replay_file(settings, tmp_path / "t.jsonl"))
    assert summary.timers_fired["drift"] >= 10
    store = EmbeddedStore(settings.store.data_dir, settings.store.database)
    try:
        rows = list_reports(store, limit=1000)
    finally:
        store.close()
    before = [r for r in rows if r["ts"] <= "2026-11-22 09:10:00.000"]
    flagged = [r for r in rows if r["drifted"]]
    assert before and not any(r["drifted"] for r in before)
    assert flagged and min(r["ts"] for r in flagged) <= "2026-11-22 09:25:00.000"
    examples = [e for c in flagged[-1]["top_clusters"] for e in c["examples"]]
    assert any("crypto" in e or "bitcoin" in e or "wallet" in e or "coin" in e for e in examples)
