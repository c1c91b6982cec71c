"""The LLM-as-judge scorer: rubric verdicts from any OpenAI-compatible endpoint.

Per job: look the content up in the verdict cache (memory, in flight, stored); otherwise
get a fresh verdict (`verdicts`: pointwise, pairwise in both orders, the cascade).

Outcomes, returned to the stage (the pipeline writes them): scores (one per rubric
dimension, plus ``overall`` and ``pairwise``) and a `Judgment` (table ``judgments``); a
``failed`` result with a short code when no verdict could be had (never a guessed one);
``over_budget`` once the hourly cost cap is spent.

Pieces: `rubric` (YAML rubrics), `prompt` (prompts, schemas, strict parsing), `client`
(endpoint calls, retries, errors), `guards` (budget, circuit breaker), `cache` (verdict
cache), `verdicts` (what is asked of whom), `endpoints` (the clients, and the local
llama.cpp server of `llama_server` when no endpoint is configured).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from monitor.config import JudgeSettings
from monitor.errors import JudgeCallError, JudgeOverBudget
from monitor.events import Event
from monitor.scorers.base import Job, Judgment, Score, ScoreResult
from monitor.scorers.judge.cache import CachedVerdict, VerdictCache, VerdictLookup, cache_key
from monitor.scorers.judge.client import Usage
from monitor.scorers.judge.endpoints import HttpClientFactory, JudgeEndpoints, Judges
from monitor.scorers.judge.guards import CostBudget
from monitor.scorers.judge.prompt import TEMPLATE_HASH
from monitor.scorers.judge.rubric import Rubric, load_rubric
from monitor.scorers.judge.verdicts import VerdictService

log = logging.getLogger("vigil.judge")

#: Score value of the pairwise outcome for the event's own response.
PAIRWISE_VALUE = {"response": 1.0, "tie": 0.0, "shadow": -1.0}


class JudgeScorer:
    """`Scorer` for the judge stage (see the module docstring)."""

    name = "judge"

    def __init__(
        self,
        settings: JudgeSettings,
        *,
        rubric: Rubric | None = None,
        verdict_lookup: VerdictLookup | None = None,
        http_client_factory: HttpClientFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rubric = rubric or load_rubric(settings.rubric)
        self._budget = CostBudget(settings.cost_budget_per_hour, clock)
        self.endpoints = JudgeEndpoints(settings, self._budget, http_client_factory)
        self.concurrency = self.endpoints.concurrency
        # Small batches: one store lookup per batch, and jobs in a batch run concurrently.
        self.batch_size = max(2, self.concurrency)
        self.structured_output = self.endpoints.structured_output
        cascade = settings.cascade
        models = settings.model + (f"+{cascade.model}" if cascade.enabled else "")
        self.version = f"{self.rubric.label}/{TEMPLATE_HASH[:8]}/{models}"
        identity = "\x00".join([
            self.version, self.structured_output, str(settings.max_text_chars),
            str(settings.max_tokens),
            f"{cascade.borderline_low}-{cascade.borderline_high}" if cascade.enabled else "",
            *([] if (pii := settings.pii_redaction()) == "keep" else [f"pii={pii}"]),
        ])
        self.identity = hashlib.sha256(identity.encode()).hexdigest()[:24]
        self._cache = VerdictCache(settings.cache_size, verdict_lookup)
        self._verdicts = VerdictService(settings, self.rubric)
        self._counts = {"cache_hits": 0, "cache_hits_store": 0, "failures": 0,
                        "over_budget": 0, "verdicts": 0}

    # -- the Scorer protocol -----------------------------------------------------------

    async def score(self, jobs: list[Job]) -> list[ScoreResult]:
        judges = await self.endpoints.judges()
        pairwise = self.settings.pairwise
        keys = [cache_key(self.identity, job.event, pairwise) for job in jobs]
        missing = [k for k in dict.fromkeys(keys) if self._cache.get(k) is None
                   and self._cache.inflight(k) is None]
        from_store = await self._cache.stored(missing)
        self._counts["cache_hits_store"] += sum(1 for k in keys if k in from_store)
        return list(await asyncio.gather(
            *(self._one(job.event, key, judges) for job, key in zip(jobs, keys, strict=True))
        ))

    def stats(self) -> dict[str, Any]:
        # Counters outlive `aclose` (the run summary is read after the stages stop).
        calls = self.endpoints.call_stats()
        out: dict[str, Any] = {
            "endpoint": self.endpoints.description,
            "judge": self.version,
            "calls": calls.calls,
            "verdicts": self._counts["verdicts"],
            "cache_hits": self._counts["cache_hits"],
            "cache_hits_store": self._counts["cache_hits_store"],
            "failures": self._counts["failures"],
            "over_budget": self._counts["over_budget"],
            "cost": round(self._budget.total, 6),
            "prompt_tokens": calls.prompt_tokens,
            "completion_tokens": calls.completion_tokens,
            "retries": calls.retries,
            "repairs": calls.repairs,
        }
        if self.settings.cascade.enabled:
            out["escalations"] = self._verdicts.escalations
        if calls.by_code:
            out["failure_codes"] = calls.by_code
        return out

    async def aclose(self) -> None:
        await self.endpoints.aclose()

    # -- one job -----------------------------------------------------------------------

    async def _one(self, event: Event, key: str, judges: Judges) -> ScoreResult:
        cached = self._cache.get(key)
        usage: Usage | None = None
        try:
            if cached is None:
                waiting = self._cache.inflight(key)
                if waiting is not None:
                    cached = await asyncio.shield(waiting)
            if cached is None:
                self._cache.begin(key)
                try:
                    fresh = await self._verdicts.verdict(event, judges)
                except BaseException as exc:
                    self._cache.finish(key, None, exc)
                    raise
                self._cache.finish(key, fresh.verdict, None)
                verdict, usage = fresh.verdict, fresh.usage
            else:
                verdict = cached
                self._counts["cache_hits"] += 1
        except JudgeOverBudget as exc:
            self._counts["over_budget"] += 1
            return ScoreResult(event.event_id, over_budget=exc.code)
        except JudgeCallError as exc:
            self._counts["failures"] += 1
            log.warning("judge verdict failed",
                        extra={"event_id": event.event_id, "code": exc.code})
            return ScoreResult(event.event_id, error=str(exc))
        self._counts["verdicts"] += 1
        return self._result(event, key, verdict, usage)

    def _result(
        self, event: Event, key: str, verdict: CachedVerdict, usage: Usage | None
    ) -> ScoreResult:
        """Scores and the `Judgment` of ``verdict``; ``usage`` None means from the cache."""
        scores = [Score(name, value) for name, value in verdict.scores.items()]
        overall = sum(verdict.scores.values()) / len(verdict.scores) if verdict.scores else 0.0
        scores.append(Score("overall", overall))
        if verdict.pair_winner:
            value = PAIRWISE_VALUE[verdict.pair_winner]
            scores.append(Score("pairwise", value, verdict.pair_winner))
        u = usage or Usage()
        judgment = Judgment(
            judge_version=self.version,
            cache_key=key,
            judge_model=verdict.judge_model,
            rubric=self.rubric.name,
            rubric_version=self.rubric.version,
            template_hash=TEMPLATE_HASH,
            mode="pointwise+pairwise" if verdict.pair_winner else "pointwise",
            cascade=verdict.cascade,
            scores=verdict.scores,
            reasons=verdict.reasons,
            overall=overall,
            pair_winner=verdict.pair_winner,
            pair_orders=verdict.pair_orders,
            pair_reasons=verdict.pair_reasons,
            shadow_model=event.shadow.model if (verdict.pair_winner and event.shadow) else "",
            cached=usage is None,
            calls=u.calls,
            repaired=u.repaired,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            cost=u.cost,
            latency_ms=round(u.latency_ms, 1),
        )
        return ScoreResult(event.event_id, scores=scores, judgment=judgment)


def build_judge_scorer(
    settings: JudgeSettings,
    *,
    verdict_lookup: VerdictLookup | None = None,
    http_client_factory: HttpClientFactory | None = None,
) -> JudgeScorer:
    """The judge scorer for these settings (the rubric is loaded and checked here).

    ``verdict_lookup`` reads verdicts stored earlier (the persistent layer of the cache);
    without it only this run's verdicts are reused.
    """
    return JudgeScorer(
        settings, verdict_lookup=verdict_lookup, http_client_factory=http_client_factory
    )
