"""Asking the judge for one event's verdict: pointwise, pairwise in both orders, the cascade.

Pointwise: the rubric's dimensions scored 1-5, with reasons. Pairwise, when the event
carries a shadow response: the judge is asked twice, with the two answers in both
positions; a win counts only when the orders agree, else it is a tie (small judges favour
a position, see ANCHORS.md). With the cascade on, a borderline pointwise verdict (overall
within the borderline band), or a pairwise one whose orders disagree, is asked again of
the strong judge; when that fails, the first verdict stands and says so.

Every text sent (system, prompt, response, shadow) first goes through the PII redaction
``judge.redact_pii`` resolves to (`monitor.checks.redact`, the PII check's detectors).

Nothing here caches or counts verdicts: that is the scorer's job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from monitor.checks.redact import redact
from monitor.config import JudgeSettings
from monitor.errors import JudgeCallError, JudgeOverBudget
from monitor.events import Event
from monitor.scorers.judge.cache import CachedVerdict
from monitor.scorers.judge.client import JudgeClient, Usage
from monitor.scorers.judge.endpoints import Judges
from monitor.scorers.judge.prompt import (
    PAIRWISE_SCHEMA,
    PointwiseVerdict,
    pairwise_messages,
    parse_pairwise,
    parse_pointwise,
    pointwise_messages,
    pointwise_schema,
)
from monitor.scorers.judge.rubric import Rubric

log = logging.getLogger("vigil.judge")

#: A pairwise verdict: the outcome, each order's pick, each order's reason, the cascade step.
Pairwise = tuple[str, tuple[str, ...], tuple[str, ...], str]


@dataclass(slots=True)
class FreshVerdict:
    """A verdict just obtained from the endpoint(s), with what it cost."""

    verdict: CachedVerdict
    usage: Usage


@dataclass(frozen=True, slots=True)
class JudgedTexts:
    """One event's texts as the judge is sent them (PII already redacted)."""

    system: str
    prompt: str
    response: str
    shadow: str | None


def combine_orders(first: str, second: str) -> str:
    """Pairwise outcome from two orders, each already mapped to response/shadow/tie.

    A win counts only when both orders name the same answer; anything else is a tie.
    """
    return first if first == second and first in {"response", "shadow"} else "tie"


class VerdictService:
    """Gets fresh verdicts from `Judges` (see the module docstring)."""

    def __init__(self, settings: JudgeSettings, rubric: Rubric) -> None:
        self.settings = settings
        self.rubric = rubric
        self._schema = pointwise_schema(rubric)
        self.redaction = settings.pii_redaction()
        """How PII is redacted from what the judge is sent (keep, placeholder, hash)."""
        self.escalations = 0
        """Verdicts (pointwise or pairwise) asked again of the strong judge."""

    async def verdict(self, event: Event, judges: Judges) -> FreshVerdict:
        """A fresh verdict on ``event``. Raises `JudgeCallError` (`JudgeOverBudget`)."""
        want_pair = self.settings.pairwise and event.shadow is not None
        usage = Usage()
        started = time.perf_counter()
        texts = self._texts(event)
        point_task = self._pointwise(texts, judges, usage)
        if want_pair:
            pair_task = self._pairwise(texts, judges, usage)
            point, pair = await asyncio.gather(point_task, pair_task)
        else:
            point, pair = await point_task, None
        (pv, point_model, point_cascade) = point
        verdict = CachedVerdict(
            judge_model=point_model,
            cascade=point_cascade if pair is None else f"{point_cascade},{pair[3]}",
            scores={k: float(v) for k, v in pv.scores.items()},
            reasons=dict(pv.reasons),
            pair_winner=pair[0] if pair else "",
            pair_orders=pair[1] if pair else (),
            pair_reasons=pair[2] if pair else (),
        )
        # Calls of one verdict overlap (both pairwise orders at once): report wall time.
        usage.latency_ms = (time.perf_counter() - started) * 1000.0
        return FreshVerdict(verdict, usage)

    def _texts(self, event: Event) -> JudgedTexts:
        mode = self.redaction
        shadow = event.shadow.content if event.shadow is not None else None
        return JudgedTexts(
            system=redact(_system_text(event), mode),
            prompt=redact(event.prompt, mode),
            response=redact(event.response.content, mode),
            shadow=redact(shadow, mode) if shadow is not None else None,
        )

    async def _pointwise(
        self, texts: JudgedTexts, judges: Judges, usage: Usage
    ) -> tuple[PointwiseVerdict, str, str]:
        cheap, strong = judges
        messages = pointwise_messages(
            self.rubric, texts.system, texts.prompt, texts.response,
            self.settings.max_text_chars,
        )

        def parse(text: str) -> PointwiseVerdict:
            return parse_pointwise(text, self.rubric)

        verdict, used = await cheap.ask(messages, self._schema, parse)
        usage.add(used)
        c = self.settings.cascade
        if strong is None or not (c.borderline_low <= verdict.overall <= c.borderline_high):
            return verdict, cheap.model, "single" if strong is None else "cheap"
        self.escalations += 1
        try:
            better, used = await strong.ask(messages, self._schema, parse)
        except JudgeOverBudget:
            raise
        except JudgeCallError as exc:
            # The first verdict is a real verdict from a configured judge, so it stands;
            # the row says the strong judge was wanted and failed.
            log.warning("strong judge failed; keeping the first verdict", extra={"code": exc.code})
            return verdict, cheap.model, "strong_failed"
        usage.add(used)
        return better, strong.model, "strong"

    async def _pairwise(self, texts: JudgedTexts, judges: Judges, usage: Usage) -> Pairwise:
        cheap, strong = judges
        outcome, orders, reasons = await self._both_orders(texts, cheap, usage)
        if strong is None:
            return outcome, orders, reasons, "single"
        if orders[0] == orders[1]:
            return outcome, orders, reasons, "cheap"
        self.escalations += 1
        try:
            outcome2, orders2, reasons2 = await self._both_orders(texts, strong, usage)
        except JudgeOverBudget:
            raise
        except JudgeCallError as exc:
            log.warning("strong judge failed; keeping the first verdict", extra={"code": exc.code})
            return outcome, orders, reasons, "strong_failed"
        return outcome2, orders2, reasons2, "strong"

    async def _both_orders(
        self, texts: JudgedTexts, client: JudgeClient, usage: Usage
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        assert texts.shadow is not None
        prompt, mine, other = texts.prompt, texts.response, texts.shadow
        limit = self.settings.max_text_chars
        (v1, u1), (v2, u2) = await asyncio.gather(
            client.ask(pairwise_messages(self.rubric, prompt, mine, other, limit),
                       PAIRWISE_SCHEMA, parse_pairwise),
            client.ask(pairwise_messages(self.rubric, prompt, other, mine, limit),
                       PAIRWISE_SCHEMA, parse_pairwise),
        )
        usage.add(u1)
        usage.add(u2)
        first = {"A": "response", "B": "shadow"}.get(v1.winner, "tie")
        second = {"A": "shadow", "B": "response"}.get(v2.winner, "tie")
        return combine_orders(first, second), (first, second), (v1.reason, v2.reason)


def _system_text(event: Event) -> str:
    return "\n".join(m.text for m in event.request.messages if m.role == "system")
