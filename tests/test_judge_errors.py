"""Judge behaviour a real server cannot produce on demand: timeouts, 429/5xx, malformed
verdicts, a dead endpoint, prices, budgets, position bias, cascade escalation.

Only the HTTP transport under the openai client is replaced (httpx MockTransport); the
openai client, the scorer, the Stage and the decisions are the real ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.config import Settings, load_settings
from monitor.pipeline.rows import result_rows
from monitor.pipeline.stages import Stage
from monitor.scorers.base import Job, ScoreResult
from monitor.scorers.judge.client import openai_httpx
from monitor.scorers.judge.scorer import JudgeScorer
from monitor.times import now_iso
from tests.fixtures.llama import (
    Recorder,
    completion,
    default_rubric,
    is_pairwise,
    make_event,
    pointwise_json,
)

RUBRIC = default_rubric()
OK = pointwise_json(RUBRIC, 4)


def judge_settings(tmp_path: Path, **judge: Any) -> Settings:
    base = {"base_url": "http://judge.test/v1", "backoff_s": 0.001, "max_retries": 2,
            "concurrency": 2}
    return load_settings(overrides={"store": {"data_dir": str(tmp_path / "data")},
                                    "judge": {**base, **judge}})


def scorer_for(settings: Settings, recorder: Recorder, **kw: Any) -> JudgeScorer:
    return JudgeScorer(settings.judge, http_client_factory=recorder.factory(), **kw)


def ok_reply(body: dict[str, Any], n: int) -> openai_httpx.Response:
    return openai_httpx.Response(200, json=completion(OK))


def tables(result: ScoreResult) -> dict[str, list[dict[str, Any]]]:
    """The rows the pipeline stores for ``result`` besides its scores, by table."""
    # Only the event's key columns go into these rows, and `make_event(i)` has ev-i's.
    event = make_event(int(result.event_id.removeprefix("ev-")))
    return result_rows(event, "judge", result, now_iso())


async def score_one(scorer: JudgeScorer, event_i: int = 1, **kw: Any) -> ScoreResult:
    (result,) = await scorer.score([Job(make_event(event_i, **kw))])
    return result


def test_timeout_is_retried_then_recorded_as_failed(tmp_path: Path) -> None:
    def reply(body: dict[str, Any], n: int) -> openai_httpx.Response:
        raise openai_httpx.ReadTimeout("slow judge")

    rec = Recorder(reply)
    scorer = scorer_for(judge_settings(tmp_path, max_retries=2), rec)
    result = asyncio.run(score_one(scorer))
    assert result.error is not None and result.error.startswith("timeout")
    assert not result.scores
    assert len(rec.bodies) == 3  # the first try and two retries
    stats = scorer.stats()
    assert stats["failures"] == 1 and stats["retries"] == 2 and stats["calls"] == 0


def test_429_waits_and_retries(tmp_path: Path) -> None:
    def reply(body: dict[str, Any], n: int) -> openai_httpx.Response:
        if n == 1:
            return openai_httpx.Response(429, headers={"retry-after": "0"},
                                         json={"error": {"message": "slow down"}})
        return openai_httpx.Response(200, json=completion(OK))

    rec = Recorder(reply)
    scorer = scorer_for(judge_settings(tmp_path), rec)
    result = asyncio.run(score_one(scorer))
    assert result.error is None
    assert {s.name: s.value for s in result.scores}["helpfulness"] == 4.0
    assert len(rec.bodies) == 2 and scorer.stats()["retries"] == 1


def test_5xx_is_retried_but_4xx_is_not(tmp_path: Path) -> None:
    statuses = iter([503, 200])

    def flaky(body: dict[str, Any], n: int) -> openai_httpx.Response:
        status = next(statuses)
        return openai_httpx.Response(status, json=completion(OK) if status == 200 else {})

    rec = Recorder(flaky)
    assert asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec))).error is None
    assert len(rec.bodies) == 2

    rec400 = Recorder(lambda b, n: openai_httpx.Response(400, json={"error": {"message": "bad"}}))
    result = asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec400)))
    assert result.error is not None and result.error.startswith("http_400")
    assert len(rec400.bodies) == 1


def test_request_is_temperature_0_with_a_schema(tmp_path: Path) -> None:
    rec = Recorder(ok_reply)
    asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec)))
    body = rec.bodies[0]
    assert body["temperature"] == 0
    # A remote endpoint gets OpenAI structured outputs; the local server gets its own form.
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == set(RUBRIC.names)
    local = JudgeScorer(judge_settings(tmp_path, base_url="").judge)
    assert local.structured_output == "json_object_schema"


def test_malformed_verdict_gets_one_repair(tmp_path: Path) -> None:
    replies = iter(["Sure! The answer is good, I'd say 4/5.", OK])
    rec = Recorder(lambda b, n: openai_httpx.Response(200, json=completion(next(replies))))
    result = asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec)))
    assert result.error is None
    row = tables(result)["judgments"][0]
    assert row["repaired"] == 1 and row["calls"] == 2
    repair = rec.bodies[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "could not be used" in repair[-1]["content"]


@pytest.mark.parametrize(
    "bad",
    [
        "not json at all",
        orjson.dumps({"helpfulness": {"reason": "x", "score": 7}}).decode(),
        orjson.dumps({d: {"reason": "x", "score": "4"} for d in RUBRIC.names}).decode(),
        orjson.dumps({d: {"reason": "x", "score": 3.5} for d in RUBRIC.names}).decode(),
    ],
)
def test_unparseable_twice_is_a_recorded_failure_never_a_guess(tmp_path: Path, bad: str) -> None:
    rec = Recorder(lambda b, n: openai_httpx.Response(200, json=completion(bad)))
    scorer = scorer_for(judge_settings(tmp_path), rec)
    result = asyncio.run(score_one(scorer))
    assert result.error is not None and result.error.startswith("unparseable_verdict")
    assert result.scores == [] and tables(result) == {}
    assert len(rec.bodies) == 2  # the call and exactly one repair
    assert scorer.stats()["failure_codes"] == {"unparseable_verdict": 1}


def test_circuit_breaker_fails_fast_while_endpoint_is_down(tmp_path: Path) -> None:
    def down(body: dict[str, Any], n: int) -> openai_httpx.Response:
        raise openai_httpx.ConnectError("connection refused")

    rec = Recorder(down)
    settings = judge_settings(tmp_path, max_retries=0, breaker_failures=2, breaker_cooldown_s=600)
    scorer = scorer_for(settings, rec)

    async def run() -> list[ScoreResult]:
        return [await score_one(scorer, i) for i in range(4)]  # one at a time: deterministic

    results = asyncio.run(run())
    codes = [(r.error or "").split(":")[0] for r in results]
    assert codes == ["connection", "connection", "circuit_open", "circuit_open"]
    assert len(rec.bodies) == 2  # no request once the breaker is open


def test_cost_is_tokens_times_price(tmp_path: Path) -> None:
    rec = Recorder(lambda b, n: openai_httpx.Response(
        200, json=completion(OK, prompt_tokens=1000, completion_tokens=500)))
    settings = judge_settings(
        tmp_path, price_per_1k_prompt_tokens=0.5, price_per_1k_completion_tokens=2.0)
    scorer = scorer_for(settings, rec)
    result = asyncio.run(score_one(scorer))
    row = tables(result)["judgments"][0]
    assert row["cost"] == pytest.approx(0.5 + 1.0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1000, 500)
    assert scorer.stats()["cost"] == pytest.approx(1.5)


def test_budget_exhausted_is_recorded_over_budget_through_the_stage(tmp_path: Path) -> None:
    now = [7200.0]
    rec = Recorder(lambda b, n: openai_httpx.Response(
        200, json=completion(OK, prompt_tokens=1000, completion_tokens=0)))
    settings = judge_settings(tmp_path, price_per_1k_prompt_tokens=2.0, cost_budget_per_hour=1.0,
                              concurrency=1)
    scorer = scorer_for(settings, rec, clock=lambda: now[0])
    written: list[dict[str, list[dict[str, Any]]]] = []

    async def write(tables: dict[str, list[dict[str, Any]]]) -> None:
        written.append(tables)

    async def run() -> Stage:
        stage = Stage(scorer, write, queue_size=16)
        await stage.start()
        for i in range(3):  # different content each: no cache hit hides the budget
            stage.offer(Job(make_event(i, response=f"answer {i}")))
            await stage.drain()
        now[0] += 3600  # the next hour has a fresh budget
        stage.offer(Job(make_event(9, response="answer 9")))
        await stage.drain()
        await stage.stop()
        return stage

    stage = asyncio.run(run())
    decisions = [(r["event_id"], r["decision"], r["reason"])
                 for t in written for r in t["decisions"]]
    assert decisions[0][1] == "scored"
    assert decisions[1:3] == [("ev-1", "over_budget", "cost_budget"),
                              ("ev-2", "over_budget", "cost_budget")]
    assert decisions[3][1] == "scored"
    assert len(rec.bodies) == 2  # nothing was sent while over budget
    assert stage.outcomes["over_budget"] == 2 and scorer.stats()["over_budget"] == 2


def _pairwise_reply(pick: Any) -> Recorder:
    def reply(body: dict[str, Any], n: int) -> openai_httpx.Response:
        if not is_pairwise(body):
            return openai_httpx.Response(200, json=completion(OK))
        text = body["messages"][-1]["content"]
        winner = pick(text)
        return openai_httpx.Response(
            200, json=completion(orjson.dumps({"reason": "r", "winner": winner}).decode()))

    return Recorder(reply)


def test_position_bias_gives_a_tie_not_a_win(tmp_path: Path) -> None:
    rec = _pairwise_reply(lambda text: "A")  # the SmolLM2 failure mode: always "A"
    result = asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec),
                                   response="GOOD answer", shadow="weak answer"))
    scores = {s.name: (s.value, s.label) for s in result.scores}
    assert scores["pairwise"] == (0.0, "tie")
    row = tables(result)["judgments"][0]
    assert row["pair_orders"] == ["response", "shadow"] and row["pair_winner"] == "tie"
    pair_bodies = [b for b in rec.bodies if is_pairwise(b)]
    assert len(pair_bodies) == 2  # both orders asked
    texts = [b["messages"][-1]["content"] for b in pair_bodies]
    a_first = [t.index("GOOD") < t.index("weak") for t in texts]
    assert sorted(a_first) == [False, True]


def test_consistent_preference_in_both_orders_is_a_win(tmp_path: Path) -> None:
    def pick(text: str) -> str:
        return "A" if text.index("GOOD") < text.index("weak") else "B"

    rec = _pairwise_reply(pick)
    result = asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec),
                                   response="GOOD answer", shadow="weak answer"))
    assert {s.name: s.label for s in result.scores}["pairwise"] == "response"
    rec2 = _pairwise_reply(pick)
    result2 = asyncio.run(score_one(scorer_for(judge_settings(tmp_path), rec2),
                                    response="weak answer", shadow="GOOD answer"))
    assert {s.name: (s.value, s.label) for s in result2.scores}["pairwise"] == (-1.0, "shadow")


def test_cascade_asks_the_strong_judge_only_when_borderline(tmp_path: Path) -> None:
    def reply(body: dict[str, Any], n: int) -> openai_httpx.Response:
        if body["model"] == "strong":
            return openai_httpx.Response(200, json=completion(pointwise_json(RUBRIC, 5)))
        text = body["messages"][-1]["content"]
        score = 3 if "borderline" in text else 1
        return openai_httpx.Response(200, json=completion(pointwise_json(RUBRIC, score)))

    rec = Recorder(reply)
    settings = judge_settings(tmp_path, model="cheap",
                              cascade={"enabled": True, "model": "strong"})
    scorer = scorer_for(settings, rec)

    async def run() -> list[ScoreResult]:
        return await scorer.score([Job(make_event(1, response="a borderline answer")),
                                   Job(make_event(2, response="a clearly bad answer"))])

    by_id = {r.event_id: r for r in asyncio.run(run())}
    border, clear = tables(by_id["ev-1"])["judgments"][0], tables(by_id["ev-2"])["judgments"][0]
    assert (border["judge_model"], border["cascade"]) == ("strong", "strong")
    assert (clear["judge_model"], clear["cascade"]) == ("cheap", "cheap")
    assert (border["overall"], clear["overall"]) == (5.0, 1.0)
    assert [b["model"] for b in rec.bodies].count("strong") == 1
    assert scorer.stats()["escalations"] == 1


def test_duplicates_in_flight_are_judged_once(tmp_path: Path) -> None:
    rec = Recorder(ok_reply)
    scorer = scorer_for(judge_settings(tmp_path), rec)
    jobs = [Job(make_event(i)) for i in range(3)]  # same content, three event ids
    results = asyncio.run(scorer.score(jobs))
    assert all(r.error is None for r in results)
    assert len(rec.bodies) == 1
    cached = sorted(tables(r)["judgments"][0]["cached"] for r in results)
    assert cached == [0, 1, 1] and scorer.stats()["cache_hits"] == 2
