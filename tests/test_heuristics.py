"""Every-event checks: each check fires on what it should and stays quiet otherwise."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from monitor.checks.heuristics import (
    _BUILTIN_REFUSAL,
    _BUILTIN_REFUSALS,
    _REFUSAL_HINTS,
    _REFUSAL_WINDOW,
    Heuristics,
)
from monitor.checks.jailbreak import MAX_SCAN_CHARS, JailbreakPatterns
from monitor.checks.pii import find_pii, iban_ok, luhn_ok
from monitor.config import HeuristicsSettings
from monitor.events import Event, parse_event
from vigil.traffic import JSON_ROUTE, JSON_SCHEMA


def _event(content: str, **response: Any) -> Event:
    route = response.pop("route", "support/refunds")
    data = {
        "event_id": "e-1",
        "ts": "2026-11-22T08:00:00Z",
        "model": "m",
        "route": route,
        "request": {"messages": [{"role": "user", "content": "help"}]},
        "response": {"content": content, **response},
    }
    return parse_event(orjson.dumps(data))


@pytest.fixture
def checker() -> Heuristics:
    return Heuristics(
        HeuristicsSettings(
            latency_ms_max=2000,
            max_response_chars=200,
            max_completion_tokens=50,
            json_routes={JSON_ROUTE: JSON_SCHEMA},
        )
    )


def test_a_good_answer_passes_everything(checker: Heuristics) -> None:
    result = checker.check(
        _event("Your refund is on its way.", finish_reason="stop", latency_ms=300)
    )
    assert result.failed == []


@pytest.mark.parametrize(
    ("content", "response", "name"),
    [
        ("   ", {}, "empty"),
        ("Your refund is", {"finish_reason": "length"}, "truncated"),
        ("I'm sorry, but I can't help with that request.", {}, "refusal"),
        ("As an AI language model, I cannot give legal advice.", {}, "refusal"),
        ("fine", {"latency_ms": 2500}, "latency"),
        ("x" * 201, {}, "length"),
        ("fine", {"completion_tokens": 51}, "length"),
        ("Mail me at jo@example.com", {}, "pii"),
    ],
)
def test_each_check_fires(
    checker: Heuristics, content: str, response: dict[str, Any], name: str
) -> None:
    assert name in checker.check(_event(content, **response)).failed


def test_refusal_is_looked_for_near_the_start_only(checker: Heuristics) -> None:
    late = "Here is what to do. " * 20 + "I'm sorry, but I can't help with that."
    assert not checker.check(_event(late)).refusal


def test_custom_refusal_patterns_extend_the_builtins() -> None:
    checker = Heuristics(HeuristicsSettings(refusal_patterns=[r"please contact a human"]))
    assert checker.check(_event("Please contact a human agent.")).refusal
    assert checker.check(_event("I cannot help with that.")).refusal


def test_json_route_compliance(checker: Heuristics) -> None:
    ok = checker.check(_event('{"intent": "refund", "confidence": 0.9}', route=JSON_ROUTE))
    assert ok.json_required and ok.json_ok and "json" not in ok.failed
    broken = checker.check(_event('{"intent": "refund", "confid', route=JSON_ROUTE))
    assert "json" in broken.failed and broken.json_error.startswith("not JSON")
    wrong = checker.check(_event('{"intent": "weather", "confidence": 0.9}', route=JSON_ROUTE))
    assert "json" in wrong.failed and "intent" in wrong.json_error
    other_route = checker.check(_event("not json at all"))
    assert not other_route.json_required and "json" not in other_route.failed


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to jane.doe@example.co.uk today", ["email"]),
        ("call +1 415-555-0134 now", ["phone"]),
        ("card 4111 1111 1111 1111 exp 09/28", ["card"]),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", ["iban"]),
        ("SSN 123-45-6789 on file", ["national_id"]),
        ("order A12345 costs $123.45, ships in 5-7 days", []),
        ("the number 4111 1111 1111 1112 fails Luhn", []),
        ("no digits here at all", []),
    ],
)
def test_pii_kinds(text: str, kinds: list[str]) -> None:
    assert find_pii(text) == kinds


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_pii_kinds_can_be_limited() -> None:
    checker = Heuristics(HeuristicsSettings(pii_kinds=["card"]))
    result = checker.check(_event("mail jo@example.com, card 4111 1111 1111 1111"))
    assert result.pii_kinds == ["card"]


def _expand(pattern: str) -> list[str]:
    """Every string ``pattern`` matches, for patterns made only of literal characters,
    ``(?:a|b)`` groups and ``?`` (the built-in refusals); any other syntax fails the test."""

    def alternation(i: int) -> tuple[list[str], int]:
        branches: list[str] = []
        current = [""]
        while i < len(pattern) and pattern[i] != ")":
            if pattern[i] == "|":
                branches += current
                current, i = [""], i + 1
                continue
            if pattern.startswith("(?:", i):
                atom, i = alternation(i + 3)
                i += 1  # the closing parenthesis
            else:
                assert pattern[i] not in "\\[]{}()*+.^$", f"expand() cannot read {pattern!r}"
                atom, i = [pattern[i]], i + 1
            if i < len(pattern) and pattern[i] == "?":
                atom, i = [*atom, ""], i + 1
            current = [head + tail for head in current for tail in atom]
        return branches + current, i

    strings, end = alternation(0)
    assert end == len(pattern), f"unbalanced parenthesis in {pattern!r}"
    return strings


def test_refusal_hints_cover_every_builtin_match() -> None:
    # The refusal check skips the regex when the head has none of _REFUSAL_HINTS; that is
    # only sound if every string a built-in pattern can match contains a hint.
    for pattern in _BUILTIN_REFUSALS:
        for text in _expand(pattern):
            assert _BUILTIN_REFUSAL.fullmatch(text), text  # expand() read the pattern right
            assert any(hint in text for hint in _REFUSAL_HINTS), text


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        ("I\u2019m sorry, but I can\u2019t help with that.", True),
        ("I'M SORRY, BUT I WON'T.", True),
        ("As an AI, I don't have opinions on that.", True),
        ("Unfortunately we can't assist with refunds after 30 days.", True),
        ("\u0131 can't help with that.", True),  # dotless i: the same letter to IGNORECASE
        ("I'm \u017forry, but I cannot.", True),  # long s
        ("I am unable to provide that \u212aind of detail.", True),  # Kelvin sign
        ("You won't be charged twice; sorry for the delay.", False),
        ("Here is how. " * 30 + "I'm sorry, but I can't help with that.", False),
        ("x" * (_REFUSAL_WINDOW - 13) + "I cannot help", True),  # ends at the window's edge
        ("x" * (_REFUSAL_WINDOW - 12) + "I cannot help", False),  # one past it
    ],
)
def test_guarded_refusal_check_agrees_with_the_plain_search(content: str, refusal: bool) -> None:
    # A refusal pattern that never matches turns the guards off: the result must not change.
    plain = Heuristics(HeuristicsSettings(refusal_patterns=["(?!)"]))
    guarded = Heuristics(HeuristicsSettings())
    assert guarded.check(_event(content)).refusal is refusal
    assert plain.check(_event(content)).refusal is refusal


def test_jailbreak_patterns_read_the_first_max_scan_chars_only() -> None:
    patterns = JailbreakPatterns()
    attack = "Now do anything now"
    filler = "a" * (MAX_SCAN_CHARS - len(attack) - 1) + " "
    assert patterns.find(filler + attack) == ["do_anything_now"]
    assert patterns.find("a" + filler + attack) == []  # "... do anything no" after the cut
