"""The judge in the gate: rubric scores per answer, and pairwise preference in both orders.

Prompts, JSON schemas and strict parsing are the judge scorer's own
(`monitor.scorers.judge.prompt`), so a gate verdict means what a production verdict
means. A reply that does not parse gets one repair request; if that fails too the verdict
is recorded as unparsed and left out of the means (the report counts them).

Pairwise: each item is asked twice, candidate as A then baseline as A. A win counts only
when both orders pick the same model; both ``tie`` is a tie; any disagreement (the
judge preferring a position, not an answer) is an order flip, reported apart.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.errors import VerdictFormatError
from monitor.evalset.gate.endpoints import Caller, Endpoint
from monitor.evalset.items import EvalItem, message_text
from monitor.scorers.judge.prompt import (
    PAIRWISE_SCHEMA,
    PairwiseVerdict,
    PointwiseVerdict,
    Winner,
    pairwise_messages,
    parse_pairwise,
    parse_pointwise,
    pointwise_messages,
    pointwise_schema,
    repair_messages,
)
from monitor.scorers.judge.rubric import Rubric

log = logging.getLogger("vigil.evalset.gate.judge")

PairOutcome = Literal["win", "loss", "tie", "flip", "unparsed"]
StructuredOutput = Literal["json_schema", "json_object_schema", "json_object"]

_AS_CANDIDATE_FIRST = {"A": "candidate", "B": "baseline", "tie": "tie"}
_AS_BASELINE_FIRST = {"A": "baseline", "B": "candidate", "tie": "tie"}
_OUTCOME: dict[str, PairOutcome] = {"candidate": "win", "baseline": "loss", "tie": "tie"}


def pair_outcome(candidate_first: Winner | None, baseline_first: Winner | None) -> PairOutcome:
    """The candidate's result from the two orders' winners (None: that verdict unparsed)."""
    if candidate_first is None or baseline_first is None:
        return "unparsed"
    first = _AS_CANDIDATE_FIRST[candidate_first]
    second = _AS_BASELINE_FIRST[baseline_first]
    return _OUTCOME[first] if first == second else "flip"


@dataclass
class PairTally:
    """Pairwise outcomes over items; flips split by which position won both times."""

    outcomes: list[PairOutcome] = field(default_factory=list)
    first_position: int = 0
    """Flips where the judge picked whatever was shown first (A) in both orders."""
    second_position: int = 0
    """Flips where it picked B both times."""

    def add(self, candidate_first: Winner | None, baseline_first: Winner | None) -> PairOutcome:
        outcome = pair_outcome(candidate_first, baseline_first)
        self.outcomes.append(outcome)
        if outcome == "flip" and candidate_first == baseline_first:
            if candidate_first == "A":
                self.first_position += 1
            elif candidate_first == "B":
                self.second_position += 1
        return outcome

    def counts(self) -> dict[str, int]:
        counts = Counter(self.outcomes)
        return {k: counts.get(k, 0) for k in ("win", "loss", "tie", "flip", "unparsed")}


def response_format(mode: StructuredOutput, schema: dict[str, Any]) -> dict[str, Any]:
    if mode == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": "verdict", "schema": schema, "strict": True}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}  # llama-cpp-python's form
    return {"type": "json_object"}


class GateJudge:
    """Verdicts from one judge endpoint with one rubric (every call cached)."""

    def __init__(self, caller: Caller, endpoint: Endpoint, rubric: Rubric, mode: StructuredOutput,
                 max_tokens: int, max_chars: int) -> None:
        self.caller = caller
        self.endpoint = endpoint
        self.rubric = rubric
        self.mode = mode
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.repairs = 0
        self.unparsed = 0

    def _params(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": self.max_tokens,
                "response_format": response_format(self.mode, schema)}

    async def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any],
                   parse: Any) -> Any:
        params = self._params(schema)
        reply = await self.caller.complete(self.endpoint, list(messages), params)
        try:
            return parse(reply.text)
        except VerdictFormatError as exc:
            self.repairs += 1
            fixed = repair_messages(messages, reply.text, str(exc))
            second = await self.caller.complete(self.endpoint, list(fixed), params)
            try:
                return parse(second.text)
            except VerdictFormatError as again:
                self.unparsed += 1
                log.info("gate verdict unparsed", extra={"error": str(again)[:120]})
                return None

    async def pointwise(self, item: EvalItem, answer: str) -> PointwiseVerdict | None:
        system = "\n".join(message_text(m) for m in item.messages if m.get("role") == "system")
        messages = pointwise_messages(self.rubric, system, item.prompt, answer, self.max_chars)
        verdict: PointwiseVerdict | None = await self._ask(
            messages, pointwise_schema(self.rubric), lambda t: parse_pointwise(t, self.rubric)
        )
        return verdict

    async def pairwise(self, item: EvalItem, a: str, b: str) -> Winner | None:
        messages = pairwise_messages(self.rubric, item.prompt, a, b, self.max_chars)
        verdict: PairwiseVerdict | None = await self._ask(messages, PAIRWISE_SCHEMA,
                                                          parse_pairwise)
        return verdict.winner if verdict is not None else None
