"""`vigil replay`: the summary, and identical results from the same file replayed twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson

from monitor.config import Settings, load_settings
from monitor.replay import replay_file
from monitor.store.embedded import EmbeddedStore
from tests.fixtures.store import decision_rows
from vigil.traffic import TrafficSpec, demo_incidents, generate_lines


def _write(path: Path, n: int, malformed: float = 0.0) -> Path:
    spec = TrafficSpec(n=n, seed=11, malformed_share=malformed)
    spec.incidents = demo_incidents(spec.start, spec.interval_s, n)
    path.write_bytes(b"".join(line + b"\n" for line in generate_lines(spec)))
    return path


def _settings(data_dir: Path) -> Settings:
    # The toxicity scorer (a real, fast model) makes decisions with a rate below 1 and a
    # tight budget, so sampled_out, over_budget and scored all occur.
    return load_settings(
        overrides={
            "store": {"data_dir": str(data_dir)},
            "judge": {"enabled": False},
            "embedding": {"enabled": False},
            "toxicity": {"enabled": True},
            "sampling": {
                "rates": {"toxicity": 0.4},
                "budget_per_minute": {"toxicity": 6.0},
                "budget_burst": {"toxicity": 3.0},
            },
            "log_level": "WARNING",
        }
    )


def test_replaying_the_same_file_twice_gives_identical_decisions(tmp_path: Path) -> None:
    events = _write(tmp_path / "events.jsonl", 1500, malformed=0.01)
    first = asyncio.run(replay_file(_settings(tmp_path / "a"), events)).as_dict()
    second = asyncio.run(replay_file(_settings(tmp_path / "b"), events)).as_dict()
    a, b = decision_rows(tmp_path / "a"), decision_rows(tmp_path / "b")
    assert len(a) == first["stored"] == 1500
    assert a == b
    kinds = {row["decision"] for row in a}
    assert {"scored", "sampled_out", "over_budget"} <= kinds
    assert first["decisions"] == second["decisions"]
    assert first["rejected_by_reason"] == second["rejected_by_reason"]
    assert first["rejected"] > 0


def _cli_replay(data_dir: Path, events: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`vigil replay --heuristics-only` as a user runs it, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--data-dir", str(data_dir), "replay",
         str(events), "--heuristics-only", *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "VIGIL_LOG_LEVEL": "WARNING"},
        timeout=300,
        check=False,
    )  # fmt: skip


def test_cli_replay_json_summary_counts_what_it_did(tmp_path: Path) -> None:
    events = _write(tmp_path / "events.jsonl", 600, malformed=0.02)
    done = _cli_replay(tmp_path / "data", events, "--json")
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    lines = sum(1 for line in events.read_bytes().split(b"\n") if line.strip())
    assert summary["read"] == lines
    assert summary["stored"] + summary["rejected"] == lines
    assert summary["stored"] == 600
    assert sum(summary["rejected_by_reason"].values()) == summary["rejected"]
    store = EmbeddedStore(tmp_path / "data")
    try:
        counts = store.query(
            "SELECT (SELECT count() FROM vigil.events FINAL) AS events, "
            "(SELECT count() FROM vigil.dead_letters FINAL) AS dead"
        )[0]
    finally:
        store.close()
    assert counts == {"events": 600, "dead": summary["rejected"]}


def test_replay_of_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    done = _cli_replay(tmp_path / "data", tmp_path / "nope.jsonl")
    assert done.returncode == 2
    assert "nope.jsonl" in done.stderr and "Traceback" not in done.stderr


def test_timers_and_alerts_do_not_depend_on_the_batch_size(tmp_path: Path) -> None:
    # One batch holding the whole file must still fire every event-time period inside it:
    # alerts need consecutive evaluations to go from pending to firing.
    events = _write(tmp_path / "events.jsonl", 4000)
    runs = {}
    for batch in (200, 100_000):
        settings = _settings(tmp_path / f"b{batch}")
        settings.kafka.batch_max = batch
        summary = asyncio.run(replay_file(settings, events)).as_dict()
        store = EmbeddedStore(tmp_path / f"b{batch}")
        try:
            alerts = store.query(
                "SELECT rule, segment_key, state, fired_at FROM vigil.alerts FINAL "
                "ORDER BY rule, segment_key, ts"
            )
        finally:
            store.close()
        runs[batch] = (summary["timers_fired"], alerts)
    assert runs[200][0]["alerts"] > 10
    assert any(alert["fired_at"] for alert in runs[200][1])
    assert runs[200] == runs[100_000]
