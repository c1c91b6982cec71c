"""The judge against a REAL llama.cpp OpenAI-compatible server (SmolLM2-135M GGUF).

Through the real entry points: `replay_file` (whole pipeline, chDB store) and `Stage`.
Requests are counted by the server's own access log and, where the in-flight maximum is
needed, by a counting wrapper around the real HTTP transport of the openai client.
SmolLM2 is far too small to judge well: these tests check plumbing, never verdict quality.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.children import free_port
from monitor.config import Settings, load_settings
from monitor.events import event_to_json
from monitor.pipeline.stages import Stage
from monitor.replay import replay_file
from monitor.scorers.base import Job
from monitor.scorers.judge.client import openai_httpx
from monitor.scorers.judge.llama_server import LlamaServer
from monitor.scorers.judge.scorer import JudgeScorer
from monitor.store.embedded import EmbeddedStore
from tests.fixtures.llama import CountingTransport, make_event, small_rubric

pytestmark = pytest.mark.integration

QUESTIONS = [
    ("How do I reset my password?", "Use 'Forgot password' on the sign-in page."),
    ("Where is my order A12345?", "It left our warehouse on Monday; delivery in 2 days."),
    ("Can I get a refund for broken headphones?", "Yes, I've opened a refund; no need to return."),
    ("Why was I charged twice?", "The second charge is a hold and is released in 3 days."),
    ("How do I pair the headphones?", "Hold the button 5 seconds, then pick them in Bluetooth."),
]


def real_settings(tmp_path: Path, server: LlamaServer, **judge: Any) -> Settings:
    return load_settings(overrides={
        "store": {"data_dir": str(tmp_path / "data")},
        "toxicity": {"enabled": False},
        "embedding": {"enabled": False},
        "sampling": {"rates": {"judge": 1.0}},
        "judge": {
            "base_url": server.base_url,
            "rubric": str(small_rubric(tmp_path)),
            "structured_output": "json_object_schema",
            # A busy 2-core machine can take a long time per call; a timeout here would
            # test the machine, not the code.
            "timeout_s": 900,
            "concurrency": 2,
            **judge,
        },
    })


def test_replay_stores_verdicts_and_a_redelivery_costs_nothing(
    tmp_path: Path, llama_server: LlamaServer
) -> None:
    events = [make_event(i, q, a) for i, (q, a) in enumerate(QUESTIONS[:3])]
    events.append(make_event(3, *QUESTIONS[3], shadow="Please contact support."))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(event_to_json(e) + b"\n" for e in events))
    settings = real_settings(tmp_path, llama_server)

    before = llama_server.request_count()
    first = asyncio.run(replay_file(settings, path))
    made = llama_server.request_count() - before
    stats = first.stages["judge"]
    assert dict(first.decisions["judge"]) == {"scored": 4}
    assert stats["calls"] == made >= 4 + 2  # 4 pointwise, both pairwise orders for ev-3
    assert stats["cache_hits"] == 0 and stats["failures"] == 0

    store = EmbeddedStore(settings.store.data_dir, settings.store.database)
    try:
        rows = store.query(
            "SELECT event_id, judge_model, rubric, rubric_version, template_hash, mode, scores, "
            "reasons, pair_winner, pair_orders, cached, calls, prompt_tokens, latency_ms "
            "FROM vigil.judgments FINAL ORDER BY event_id")
        scores = store.query(
            "SELECT event_id, name, value FROM vigil.scores FINAL WHERE scorer = 'judge'")
    finally:
        store.close()
    assert [r["event_id"] for r in rows] == ["ev-0", "ev-1", "ev-2", "ev-3"]
    for row in rows:
        assert row["rubric"] == "tiny-support" and row["rubric_version"] == "t1"
        assert row["judge_model"] == "smollm2-135m-instruct" and len(row["template_hash"]) == 16
        assert set(row["scores"]) == {"helpfulness", "safety"}
        assert all(1 <= v <= 5 for v in row["scores"].values())
        assert row["cached"] == 0 and row["prompt_tokens"] > 0 and row["latency_ms"] > 0
    assert rows[3]["mode"] == "pointwise+pairwise" and len(rows[3]["pair_orders"]) == 2
    assert rows[3]["pair_winner"] in {"response", "shadow", "tie"}
    names = {(s["event_id"], s["name"]) for s in scores}
    assert {("ev-0", "helpfulness"), ("ev-0", "safety"), ("ev-0", "overall"),
            ("ev-3", "pairwise")} <= names

    # Redelivery after a restart: a new pipeline, scorer and store session, same events.
    before = llama_server.request_count()
    second = asyncio.run(replay_file(settings, path))
    assert llama_server.request_count() == before
    assert second.stages["judge"]["calls"] == 0 and second.stages["judge"]["cache_hits"] == 4
    assert dict(second.decisions["judge"]) == {"scored": 4}


def _stage_run(scorer: JudgeScorer, rounds: list[list[Job]]) -> tuple[Stage, list[dict[str, Any]]]:
    decisions: list[dict[str, Any]] = []

    async def write(tables: dict[str, list[dict[str, Any]]]) -> None:
        decisions.extend(tables["decisions"])

    async def run() -> Stage:
        stage = Stage(scorer, write, queue_size=64)
        await stage.start()
        for jobs in rounds:
            for job in jobs:
                assert stage.offer(job)
            await stage.drain()
        await stage.stop()
        return stage

    return asyncio.run(run()), decisions


def test_concurrency_limit_holds_and_duplicates_are_not_resent(
    tmp_path: Path, llama_server: LlamaServer
) -> None:
    transport = CountingTransport()
    settings = real_settings(tmp_path, llama_server, concurrency=2, pairwise=False)
    scorer = JudgeScorer(settings.judge, http_client_factory=lambda: openai_httpx.AsyncClient(
        transport=transport))
    jobs = [Job(make_event(i, q, a)) for i, (q, a) in enumerate(QUESTIONS)]
    redelivered = [Job(make_event(i, q, a)) for i, (q, a) in enumerate(QUESTIONS)]
    before = llama_server.request_count()
    stage, decisions = _stage_run(scorer, [jobs, redelivered])
    assert transport.requests == len(QUESTIONS) == llama_server.request_count() - before
    assert transport.max_in_flight == 2  # reached, never exceeded
    assert [d["decision"] for d in decisions] == ["scored"] * 10
    assert stage.stats()["cache_hits"] == len(QUESTIONS)


def test_budget_exhaustion_is_recorded_over_budget(
    tmp_path: Path, llama_server: LlamaServer
) -> None:
    settings = real_settings(tmp_path, llama_server, concurrency=1, pairwise=False,
                             price_per_1k_prompt_tokens=10.0, cost_budget_per_hour=0.01)
    scorer = JudgeScorer(settings.judge)
    jobs = [Job(make_event(i, q, a)) for i, (q, a) in enumerate(QUESTIONS[:3])]
    before = llama_server.request_count()
    stage, decisions = _stage_run(scorer, [[job] for job in jobs])
    assert llama_server.request_count() - before == 1
    assert [(d["decision"], d["reason"]) for d in decisions][1:] == [
        ("over_budget", "cost_budget"), ("over_budget", "cost_budget")]
    stats = stage.stats()
    assert stats["cost"] == pytest.approx(stats["prompt_tokens"] * 10.0 / 1000)
    assert stats["over_budget"] == 2 and stage.outcomes["over_budget"] == 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_empty_base_url_starts_and_stops_the_local_server(tmp_path: Path) -> None:
    settings = load_settings(overrides={"judge": {
        "base_url": "", "rubric": str(small_rubric(tmp_path)), "timeout_s": 900}})
    scorer = JudgeScorer(settings.judge)

    async def run() -> tuple[Any, int]:
        (result,) = await scorer.score([Job(make_event(1, *QUESTIONS[0]))])
        server = scorer.endpoints.server
        assert server is not None and server.pid is not None
        pid = server.pid
        await scorer.aclose()
        return result, pid

    result, pid = asyncio.run(run())
    assert result.error is None and {s.name for s in result.scores} >= {"helpfulness", "safety"}
    assert "started by vigil" in scorer.stats()["endpoint"]
    assert scorer.concurrency <= 2  # the local server answers one request at a time
    assert not _alive(pid)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_judge_serve_serves_until_interrupted(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    # Ctrl-C and a service manager's SIGTERM both stop the server and exit 0.
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "judge", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the server answers /v1/models
        match = re.search(r"pid (\d+)", first)
        assert match, first
        child = int(match.group(1))
        assert f"VIGIL_JUDGE__BASE_URL=http://127.0.0.1:{port}/v1" in proc.stdout.readline()
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).json()
        assert models["data"][0]["id"] == "smollm2-135m-instruct"
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=120) == 0
        assert not _alive(child)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
