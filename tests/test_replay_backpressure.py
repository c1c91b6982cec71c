"""Replay applies backpressure to a slow scorer stage: it never drops (`queue_full`), and
the same file gives the same decisions however fast the model is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.config import Settings, load_settings
from monitor.replay import replay_file
from monitor.scorers.base import Job, ScoreResult
from monitor.scorers.toxicity.scorer import ToxicityScorer
from tests.fixtures.store import decision_rows
from vigil.traffic import TrafficSpec, demo_incidents, generate_lines


def _write(path: Path, n: int) -> Path:
    spec = TrafficSpec(n=n, seed=23, malformed_share=0.01)
    spec.incidents = demo_incidents(spec.start, spec.interval_s, n)
    path.write_bytes(b"".join(line + b"\n" for line in generate_lines(spec)))
    return path


def _settings(data_dir: Path) -> Settings:
    # A tiny queue and small batches: a slowed toxicity stage falls far behind ingestion.
    # A rate below 1 and a budget keep sampled_out and over_budget (the sampler's own
    # decisions, in event time) in the mix.
    return load_settings(
        overrides={
            "store": {"data_dir": str(data_dir)},
            "kafka": {"batch_max": 300},
            "judge": {"enabled": False},
            "embedding": {"enabled": False},
            "toxicity": {"enabled": True, "queue_size": 4, "batch_size": 4},
            "sampling": {
                "rates": {"toxicity": 0.7},
                "budget_per_minute": {"toxicity": 15.0},
                "budget_burst": {"toxicity": 10.0},
            },
            "log_level": "WARNING",
        }
    )


def test_a_slowed_stage_changes_no_replay_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _write(tmp_path / "events.jsonl", 1200)
    fast = asyncio.run(replay_file(_settings(tmp_path / "fast"), events)).as_dict()

    score = ToxicityScorer.score
    calls = 0

    async def slow_score(self: ToxicityScorer, jobs: list[Job]) -> list[ScoreResult]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.003)  # ~1,300 texts/s at most: far slower than ingestion
        return await score(self, jobs)

    monkeypatch.setattr(ToxicityScorer, "score", slow_score)
    slow = asyncio.run(replay_file(_settings(tmp_path / "slow"), events)).as_dict()
    assert calls > 50  # the slowed stage did run, many times over

    a, b = decision_rows(tmp_path / "fast"), decision_rows(tmp_path / "slow")
    assert a == b
    assert len(a) == slow["stored"] == fast["stored"]
    assert not [row for row in b if row["reason"] == "queue_full"]
    # Every event the sampler let in was scored; the rest are the sampler's decisions.
    assert {row["decision"] for row in b} == {"scored", "sampled_out", "over_budget"}
    assert {row["reason"] for row in b if row["decision"] == "over_budget"} != {"queue_full"}

    # The run summary agrees: nothing pending or dropped, same counts as unslowed.
    counts = slow["decisions"]["toxicity"]
    assert counts == fast["decisions"]["toxicity"]
    assert "pending" not in counts
    assert counts["scored"] == sum(1 for row in b if row["decision"] == "scored")
    assert slow["stages"]["toxicity"]["outcomes"] == {"scored": counts["scored"]}
