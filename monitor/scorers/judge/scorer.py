"""The LLM-as-judge scorer: rubric verdicts from any OpenAI-compatible endpoint.

Per job: look the content up in the verdict cache (memory, in flight, store); otherwise
ask the judge for a pointwise verdict on the rubric and, when the event carries a shadow
response, a pairwise verdict in *both* orders (a win counts only when the orders agree,
else it is a tie: small judges favour a position, see ANCHORS.md). With the cascade on, a
borderline first verdict is re-judged by the strong judge.

Outcomes: scores (one per rubric dimension, plus ``overall`` and ``pairwise``) into table
``scores``; one row into ``judgments``; a ``failed`` result with a short code when no
verdict could be had (never a guessed one); ``over_budget`` once the hourly cost cap is spent.

Pieces: judge_rubric (YAML rubrics), judge_prompt (prompts, schemas, strict parsing),
judge_client (endpoint calls, retries, errors), judge_guards (budget, circuit breaker),
judge_cache (verdict cache); `monitor.scorers.judge.llama_server` for the local server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from monitor.config import JudgeSettings
from monitor.errors import JudgeError
from monitor.events import Event
from monitor.scorers.base import Job, Score, ScoreResult
from monitor.scorers.judge.cache import CachedVerdict, VerdictCache, cache_key
from monitor.scorers.judge.client import (
    JudgeCallError,
    JudgeClient,
    JudgeOverBudget,
    StructuredOutput,
    Usage,
    openai_httpx,
)
from monitor.scorers.judge.guards import CircuitBreaker, CostBudget
from monitor.scorers.judge.llama_server import SERVER_PARALLELISM, LlamaServer, start_local_server
from monitor.scorers.judge.prompt import (
    PAIRWISE_SCHEMA,
    TEMPLATE_HASH,
    PointwiseVerdict,
    pairwise_messages,
    parse_pairwise,
    parse_pointwise,
    pointwise_messages,
    pointwise_schema,
)
from monitor.scorers.judge.rubric import Rubric, load_rubric
from monitor.store.base import Store
from monitor.times import now_iso

log = logging.getLogger("vigil.judge")

#: Score value of the pairwise outcome for the event's own response.
PAIRWISE_VALUE = {"response": 1.0, "tie": 0.0, "shadow": -1.0}

HttpClientFactory = Callable[[], openai_httpx.AsyncClient]


@dataclass(slots=True)
class _Fresh:
    """A verdict just obtained from the endpoint(s), with what it cost."""

    verdict: CachedVerdict
    usage: Usage


def combine_orders(first: str, second: str) -> str:
    """Pairwise outcome from two orders, each already mapped to response/shadow/tie.

    A win counts only when both orders name the same answer; anything else is a tie.
    """
    return first if first == second and first in {"response", "shadow"} else "tie"


class JudgeScorer:
    """`Scorer` for the judge stage (see the module docstring)."""

    name = "judge"

    def __init__(
        self,
        settings: JudgeSettings,
        *,
        rubric: Rubric | None = None,
        store: Store | None = None,
        http_client_factory: HttpClientFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rubric = rubric or load_rubric(settings.rubric)
        self.local = not settings.base_url
        # The local llama.cpp server answers one request at a time; more in flight only
        # queue there and run into the client timeout. Two keep it busy between calls.
        limit = SERVER_PARALLELISM + 1 if self.local else settings.concurrency
        self.concurrency = min(settings.concurrency, limit)
        # Small batches: one store lookup per batch, and jobs in a batch run concurrently.
        self.batch_size = max(2, self.concurrency)
        self.structured_output: StructuredOutput = (
            ("json_object_schema" if self.local else "json_schema")
            if settings.structured_output == "auto"
            else settings.structured_output
        )
        cascade = settings.cascade
        models = settings.model + (f"+{cascade.model}" if cascade.enabled else "")
        self.version = f"{self.rubric.label}/{TEMPLATE_HASH[:8]}/{models}"
        identity = "\x00".join([
            self.version, self.structured_output, str(settings.max_text_chars),
            str(settings.max_tokens),
            f"{cascade.borderline_low}-{cascade.borderline_high}" if cascade.enabled else "",
        ])
        self.identity = hashlib.sha256(identity.encode()).hexdigest()[:24]
        self._schema = pointwise_schema(self.rubric)
        self._cache = VerdictCache(settings.cache_size, store)
        self._budget = CostBudget(settings.cost_budget_per_hour, clock)
        self._http_factory = http_client_factory
        self._clients: tuple[JudgeClient, JudgeClient | None] | None = None
        self._all_clients: list[JudgeClient] = []
        self._start_lock = asyncio.Lock()
        self._start_error: JudgeError | None = None
        self._server: LlamaServer | None = None
        self.endpoint = settings.base_url or "local llama.cpp server (not started yet)"
        self._counts = {"cache_hits": 0, "cache_hits_store": 0, "failures": 0,
                        "over_budget": 0, "escalations": 0, "verdicts": 0}

    # -- wiring ------------------------------------------------------------------------

    def bind_store(self, store: Store) -> None:
        """Use ``store`` (table judgments) as the persistent verdict cache."""
        self._cache.store = store

    async def _ensure_clients(self) -> tuple[JudgeClient, JudgeClient | None]:
        if self._clients is not None:
            return self._clients
        async with self._start_lock:
            if self._clients is not None:
                return self._clients
            if self._start_error is not None:
                raise self._start_error
            s = self.settings
            base_url = s.base_url
            if self.local:
                base_url = await self._start_local()
            cheap = self._client(base_url, s.api_key.get_secret_value(), s.model,
                                 s.price_per_1k_prompt_tokens, s.price_per_1k_completion_tokens)
            strong = None
            c = s.cascade
            if c.enabled:
                strong = self._client(
                    c.base_url or base_url,
                    c.api_key.get_secret_value() or s.api_key.get_secret_value(),
                    c.model, c.price_per_1k_prompt_tokens, c.price_per_1k_completion_tokens,
                )
            self._clients = (cheap, strong)
            self._all_clients = [c for c in self._clients if c is not None]
            return self._clients

    def _client(
        self, base_url: str, key: str, model: str, p_in: float, p_out: float
    ) -> JudgeClient:
        s = self.settings
        return JudgeClient(
            base_url=base_url, api_key=key, model=model, timeout_s=s.timeout_s,
            max_retries=s.max_retries, backoff_s=s.backoff_s, concurrency=self.concurrency,
            price_per_1k_prompt=p_in, price_per_1k_completion=p_out,
            structured_output=self.structured_output, max_tokens=s.max_tokens,
            breaker=CircuitBreaker(s.breaker_failures, s.breaker_cooldown_s),
            budget=self._budget,
            http_client=self._http_factory() if self._http_factory else None,
        )

    async def _start_local(self) -> str:
        s = self.settings
        if not s.autostart_local:
            self._start_error = JudgeError(
                "judge.base_url is empty and judge.autostart_local is off: no judge endpoint"
            )
            raise self._start_error
        log.info(
            "no judge endpoint configured (judge.base_url empty): starting a local llama.cpp "
            "server",
            extra={"model_path": s.local_model_path or "bundled SmolLM2-135M-Instruct"},
        )
        try:
            self._server = await asyncio.to_thread(
                start_local_server, s.local_model_path or None, alias=s.model,
                n_ctx=s.local_n_ctx, n_threads=s.local_threads,
            )
        except JudgeError as exc:
            self._start_error = exc
            raise
        self.endpoint = (
            f"local llama.cpp {self._server.model_path.name} at {self._server.base_url} "
            f"(started by vigil, pid {self._server.pid})"
        )
        log.info("local judge server started", extra={"endpoint": self._server.base_url,
                                                      "pid": self._server.pid})
        return self._server.base_url

    # -- the Scorer protocol -----------------------------------------------------------

    async def score(self, jobs: list[Job]) -> list[ScoreResult]:
        cheap, strong = await self._ensure_clients()
        pairwise = self.settings.pairwise
        keys = [cache_key(self.identity, job.event, pairwise) for job in jobs]
        missing = [k for k in dict.fromkeys(keys) if self._cache.get(k) is None
                   and self._cache.inflight(k) is None]
        from_store = await self._cache.lookup_store(missing)
        self._counts["cache_hits_store"] += sum(1 for k in keys if k in from_store)
        return list(await asyncio.gather(
            *(self._one(job.event, key, cheap, strong) for job, key in zip(jobs, keys, strict=True))
        ))

    def stats(self) -> dict[str, Any]:
        calls = retries = repairs = prompt_tokens = completion_tokens = 0
        by_code: dict[str, int] = {}
        # Counters outlive `aclose` (the run summary is read after the stages stop).
        for client in self._all_clients:
            st = client.stats
            calls += st.calls
            retries += st.retries
            repairs += st.repairs
            prompt_tokens += st.prompt_tokens
            completion_tokens += st.completion_tokens
            for code, n in st.by_code.items():
                by_code[code] = by_code.get(code, 0) + n
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "judge": self.version,
            "calls": calls,
            "verdicts": self._counts["verdicts"],
            "cache_hits": self._counts["cache_hits"],
            "cache_hits_store": self._counts["cache_hits_store"],
            "failures": self._counts["failures"],
            "over_budget": self._counts["over_budget"],
            "cost": round(self._budget.total, 6),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "retries": retries,
            "repairs": repairs,
        }
        if self.settings.cascade.enabled:
            out["escalations"] = self._counts["escalations"]
        if by_code:
            out["failure_codes"] = by_code
        return out

    async def aclose(self) -> None:
        clients, self._clients = self._clients, None
        for client in clients or ():
            if client is not None:
                await client.aclose()
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.stop)

    # -- one job -----------------------------------------------------------------------

    async def _one(
        self, event: Event, key: str, cheap: JudgeClient, strong: JudgeClient | None
    ) -> ScoreResult:
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
                    fresh = await self._fresh(event, cheap, strong)
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

    async def _fresh(
        self, event: Event, cheap: JudgeClient, strong: JudgeClient | None
    ) -> _Fresh:
        want_pair = self.settings.pairwise and event.shadow is not None
        usage = Usage()
        started = time.perf_counter()
        point_task = self._pointwise(event, cheap, strong, usage)
        if want_pair:
            pair_task = self._pairwise(event, cheap, strong, usage)
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
        return _Fresh(verdict, usage)

    async def _pointwise(
        self, event: Event, cheap: JudgeClient, strong: JudgeClient | None, usage: Usage
    ) -> tuple[PointwiseVerdict, str, str]:
        messages = pointwise_messages(
            self.rubric, _system_text(event), event.prompt, event.response.content,
            self.settings.max_text_chars,
        )

        def parse(text: str) -> PointwiseVerdict:
            return parse_pointwise(text, self.rubric)

        verdict, used = await cheap.ask(messages, self._schema, parse)
        usage.add(used)
        c = self.settings.cascade
        if strong is None or not (c.borderline_low <= verdict.overall <= c.borderline_high):
            return verdict, cheap.model, "single" if strong is None else "cheap"
        self._counts["escalations"] += 1
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

    async def _pairwise(
        self, event: Event, cheap: JudgeClient, strong: JudgeClient | None, usage: Usage
    ) -> tuple[str, tuple[str, ...], tuple[str, ...], str]:
        outcome, orders, reasons = await self._both_orders(event, cheap, usage)
        if strong is None:
            return outcome, orders, reasons, "single"
        if orders[0] == orders[1]:
            return outcome, orders, reasons, "cheap"
        self._counts["escalations"] += 1
        try:
            outcome2, orders2, reasons2 = await self._both_orders(event, strong, usage)
        except JudgeOverBudget:
            raise
        except JudgeCallError as exc:
            log.warning("strong judge failed; keeping the first verdict", extra={"code": exc.code})
            return outcome, orders, reasons, "strong_failed"
        return outcome2, orders2, reasons2, "strong"

    async def _both_orders(
        self, event: Event, client: JudgeClient, usage: Usage
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        assert event.shadow is not None
        prompt, mine, other = event.prompt, event.response.content, event.shadow.content
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

    # -- results -----------------------------------------------------------------------

    def _result(
        self, event: Event, key: str, verdict: CachedVerdict, usage: Usage | None
    ) -> ScoreResult:
        scores = [Score(name, value) for name, value in verdict.scores.items()]
        overall = sum(verdict.scores.values()) / len(verdict.scores) if verdict.scores else 0.0
        scores.append(Score("overall", overall))
        if verdict.pair_winner:
            value = PAIRWISE_VALUE[verdict.pair_winner]
            scores.append(Score("pairwise", value, verdict.pair_winner))
        u = usage or Usage()
        row = {
            "event_id": event.event_id,
            "ts": event.ts.astimezone(UTC).isoformat(),
            "route": event.route,
            "model": event.model,
            "model_version": event.model_version,
            "judge_version": self.version,
            "cache_key": key,
            "judge_model": verdict.judge_model,
            "rubric": self.rubric.name,
            "rubric_version": self.rubric.version,
            "template_hash": TEMPLATE_HASH,
            "mode": "pointwise+pairwise" if verdict.pair_winner else "pointwise",
            "cascade": verdict.cascade,
            "scores": verdict.scores,
            "reasons": verdict.reasons,
            "overall": overall,
            "pair_winner": verdict.pair_winner,
            "pair_orders": list(verdict.pair_orders),
            "pair_reasons": list(verdict.pair_reasons),
            "shadow_model": event.shadow.model if (verdict.pair_winner and event.shadow) else "",
            "cached": 0 if usage is not None else 1,
            "calls": u.calls,
            "repaired": int(u.repaired),
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cost": u.cost,
            "latency_ms": round(u.latency_ms, 1),
            "created_at": now_iso(),
        }
        return ScoreResult(event.event_id, scores=scores, rows={"judgments": [row]})


def _system_text(event: Event) -> str:
    return "\n".join(m.text for m in event.request.messages if m.role == "system")


def build_judge_scorer(
    settings: JudgeSettings, *, http_client_factory: HttpClientFactory | None = None
) -> JudgeScorer:
    """The judge scorer for these settings (the rubric is loaded and checked here)."""
    return JudgeScorer(settings, http_client_factory=http_client_factory)
