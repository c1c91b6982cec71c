"""The bundled local judge gets a small explicit budget (replay waits for every verdict it
asks for, and SmolLM2 on a CPU takes seconds each); the replay summary says, per scorer,
how many events were scored and why the rest were not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from monitor.config import load_settings
from monitor.events import parse_event
from monitor.pipeline.sampling import Sampler
from vigil.traffic import TrafficSpec, generate_events, generate_lines


def test_the_bundled_judge_is_held_to_its_hourly_budget() -> None:
    local = load_settings(overrides={"judge": {"local_budget_per_hour": 6.0}})
    remote = load_settings(overrides={"judge": {"base_url": "https://judge.example/v1"}})
    assert local.sampling_settings().budget_per_minute["judge"] == 0.1
    assert remote.sampling_settings() == remote.sampling
    # Every event is sampled (rate 1) over three hours of event time: 6 an hour get through.
    spec = TrafficSpec(n=1080, interval_s=10.0, feedback_share=0.0, seed=3)
    sampling = local.sampling_settings().model_copy(update={"rates": {"judge": 1.0}})
    sampler = Sampler(sampling, ["judge"])
    pending = sum(
        1
        for raw in generate_events(spec)
        for d in sampler.decide(parse_event(orjson.dumps(raw)), [])
        if d.decision == "pending"
    )
    assert 18 <= pending <= 19  # 3 h at 6 an hour, plus the bucket's first token


def test_the_replay_summary_says_what_was_scored_and_why_not(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = generate_lines(TrafficSpec(n=300, seed=4))
    events.write_bytes(b"".join(line + b"\n" for line in lines))
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--data-dir", str(tmp_path / "data"), "replay",
         str(events)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "VIGIL_LOG_LEVEL": "WARNING", "VIGIL_JUDGE__ENABLED": "false",
             "VIGIL_EMBEDDING__ENABLED": "false"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "300 of 300 events scored" in said["toxicity"]
    assert "judge" not in said
