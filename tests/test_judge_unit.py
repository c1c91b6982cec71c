"""Judge pieces without any endpoint: rubrics, prompts, parsing, orders, guards, cache keys."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from monitor.errors import ConfigError, VerdictFormatError
from monitor.scorers.judge.cache import cache_key
from monitor.scorers.judge.guards import CircuitBreaker, CostBudget
from monitor.scorers.judge.prompt import (
    TEMPLATE_HASH,
    pairwise_messages,
    parse_pairwise,
    parse_pointwise,
    pointwise_messages,
    truncate,
)
from monitor.scorers.judge.rubric import builtin_rubrics, load_rubric
from monitor.scorers.judge.verdicts import combine_orders
from tests.fixtures.llama import make_event, pointwise_json, small_rubric


def test_builtin_rubrics_load_with_versions() -> None:
    assert {"support-assistant", "general"} <= set(builtin_rubrics())
    support = load_rubric("support-assistant")
    assert support.version and "helpfulness" in support.names and "safety" in support.names
    general = load_rubric("general")
    assert {"correctness", "coherence", "instruction_following"} <= set(general.names)


def test_rubric_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no built-in rubric"):
        load_rubric("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\ndimensions:\n  - name: Help\n    question: q\n"
                   "    anchors: {1: a, 2: b, 3: c, 4: d, 5: e}\n")
    with pytest.raises(ConfigError, match="lower_snake_case"):
        load_rubric(str(bad))
    bad.write_text("name: x\nversion: 1\ndimensions:\n  - name: help\n    question: q\n"
                   "    anchors: {1: a, 5: e}\n")
    with pytest.raises(ConfigError, match="each of 1, 2, 3, 4 and 5"):
        load_rubric(str(bad))
    assert load_rubric(str(small_rubric(tmp_path))).version == "t1"


def test_truncate_keeps_head_and_tail_and_marks_the_cut() -> None:
    text = "HEAD" + "x" * 5000 + "TAIL"
    cut = truncate(text, 300)
    assert cut.startswith("HEAD") and cut.endswith("TAIL") and "characters omitted" in cut
    assert len(cut) < 400
    assert truncate("short", 300) == "short"


def test_prompts_carry_rubric_and_texts() -> None:
    rubric = load_rubric("support-assistant")
    messages = pointwise_messages(rubric, "Be brief.", "Where is my order?", "On its way.", 2000)
    user = messages[-1]["content"]
    assert "Where is my order?" in user and "On its way." in user and "Be brief." in user
    for dim in rubric.dimensions:
        assert dim.anchors[5] in user
    pair = pairwise_messages(rubric, "q", "first answer", "second answer", 2000)[-1]["content"]
    assert pair.index("first answer") < pair.index("second answer")
    assert len(TEMPLATE_HASH) == 16


def test_pointwise_parsing_is_strict() -> None:
    rubric = load_rubric("support-assistant")
    verdict = parse_pointwise(pointwise_json(rubric, 4), rubric)
    assert verdict.scores == {name: 4 for name in rubric.names} and verdict.overall == 4.0
    fenced = "```json\n" + pointwise_json(rubric, 2) + "\n```"
    assert parse_pointwise(fenced, rubric).overall == 2.0
    missing = orjson.dumps({"helpfulness": {"reason": "r", "score": 3}}).decode()
    for bad in ["", "[1, 2]", "{", missing,
                orjson.dumps({n: {"reason": "r", "score": True} for n in rubric.names}).decode(),
                orjson.dumps({n: {"reason": "r", "score": 0} for n in rubric.names}).decode()]:
        with pytest.raises(VerdictFormatError):
            parse_pointwise(bad, rubric)


def test_pairwise_parsing() -> None:
    assert parse_pairwise('{"reason": "r", "winner": "B"}').winner == "B"
    with pytest.raises(VerdictFormatError):
        parse_pairwise('{"reason": "r", "winner": "both"}')


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [("response", "response", "response"), ("shadow", "shadow", "shadow"),
     ("response", "shadow", "tie"), ("shadow", "response", "tie"),
     ("tie", "tie", "tie"), ("response", "tie", "tie")],
)
def test_a_win_needs_both_orders(first: str, second: str, outcome: str) -> None:
    assert combine_orders(first, second) == outcome


def test_cost_budget_is_per_hour() -> None:
    now = [3600.0 * 10]
    budget = CostBudget(1.0, clock=lambda: now[0])
    assert not budget.exhausted()
    budget.add(0.6)
    assert not budget.exhausted()
    budget.add(0.6)
    assert budget.exhausted()
    now[0] += 3600
    assert not budget.exhausted() and budget.total == pytest.approx(1.2)
    assert not CostBudget(None).exhausted()


def test_breaker_opens_then_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 11
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failure()  # the trial failed: open again
    assert breaker.state == "open"
    now[0] = 22
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.opened == 2


def test_cache_key_is_content_and_identity_not_event_id() -> None:
    a, b = make_event(1), make_event(2)
    assert cache_key("judge-1", a, True) == cache_key("judge-1", b, True)
    assert cache_key("judge-1", a, True) != cache_key("judge-2", a, True)
    other = make_event(1, response="Something else.")
    assert cache_key("judge-1", a, True) != cache_key("judge-1", other, True)
    shadowed = make_event(1, shadow="A baseline answer.")
    assert cache_key("judge-1", a, True) != cache_key("judge-1", shadowed, True)
    assert cache_key("judge-1", a, False) == cache_key("judge-1", shadowed, False)
