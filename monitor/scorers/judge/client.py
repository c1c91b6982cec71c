"""One OpenAI-compatible judge endpoint: concurrency limit, timeouts, retries, breaker, cost.

Every openai/httpx exception is translated in `_translate`, the one place that knows them,
into `JudgeCallError` with a short ``code`` that ends up as the reason of a ``failed``
decision. The openai client's own retries are off (``max_retries=0``) so that retries,
backoff and the breaker are counted and controlled here.

`JudgeClient.ask` is the verdict round trip: request JSON (schema-constrained where the
server supports it) at temperature 0, parse strictly, ask once for a repair, else fail.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import openai

try:  # openai 3.x speaks httpx2 (the successor of httpx); 1.x speaks httpx
    import httpx2 as openai_httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as openai_httpx  # type: ignore[no-redef]

from monitor.errors import JudgeCallError, JudgeOverBudget, VerdictFormatError
from monitor.scorers.judge.guards import CircuitBreaker, CostBudget
from monitor.scorers.judge.prompt import Messages, repair_messages

__all__ = ["ClientStats", "JudgeClient", "StructuredOutput", "Usage", "openai_httpx"]

log = logging.getLogger("vigil.judge")

T = TypeVar("T")
StructuredOutput = Literal["json_schema", "json_object_schema", "json_object"]

_RETRY_AFTER_MAX_S = 30.0
_BACKOFF_MAX_S = 20.0


def _retry_after(response: openai_httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        return min(_RETRY_AFTER_MAX_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _translate(exc: Exception) -> JudgeCallError:
    """The one place openai/httpx exceptions become `JudgeCallError`."""
    if isinstance(exc, openai.APITimeoutError | openai_httpx.TimeoutException):
        return JudgeCallError("timeout", type(exc).__name__, retryable=True)
    if isinstance(exc, openai.APIConnectionError | openai_httpx.TransportError):
        return JudgeCallError("connection", type(exc).__name__, retryable=True)
    if isinstance(exc, openai.RateLimitError):
        return JudgeCallError("rate_limited", "HTTP 429", retryable=True,
                              retry_after_s=_retry_after(exc.response))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return JudgeCallError("server_error", f"HTTP {status}", retryable=True,
                                  retry_after_s=_retry_after(exc.response))
        return JudgeCallError(f"http_{status}", str(exc.message)[:200])
    if isinstance(exc, openai.OpenAIError | openai_httpx.HTTPError):
        return JudgeCallError("client_error", f"{type(exc).__name__}: {str(exc)[:200]}")
    raise exc  # not ours to translate: a bug should surface, not become a verdict failure


@dataclass(slots=True)
class Usage:
    """What one verdict cost, summed over its calls (retries are not billed: they failed)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    repaired: bool = False
    truncated: bool = False

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.latency_ms += other.latency_ms
        self.repaired = self.repaired or other.repaired


@dataclass
class ClientStats:
    calls: int = 0
    retries: int = 0
    failures: int = 0
    repairs: int = 0
    unparseable: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    by_code: dict[str, int] = field(default_factory=dict)


class JudgeClient:
    """Calls one endpoint/model; safe to share between concurrent tasks."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        concurrency: int,
        price_per_1k_prompt: float,
        price_per_1k_completion: float,
        structured_output: StructuredOutput,
        max_tokens: int,
        breaker: CircuitBreaker,
        budget: CostBudget,
        http_client: openai_httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.price_prompt = price_per_1k_prompt / 1000.0
        self.price_completion = price_per_1k_completion / 1000.0
        self.structured_output = structured_output
        self.max_tokens = max_tokens
        self.breaker = breaker
        self.budget = budget
        self.stats = ClientStats()
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(concurrency)
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.structured_output == "json_schema":
            return {"type": "json_schema",
                    "json_schema": {"name": "verdict", "schema": _strict(schema), "strict": True}}
        if self.structured_output == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object"}

    async def _call_once(self, messages: Messages, schema: dict[str, Any]) -> tuple[str, Usage]:
        started = time.perf_counter()
        try:
            # The llama.cpp flavour adds "schema" to json_object, which the SDK's types do
            # not know; the request body is what the server reads.
            create: Any = self._client.chat.completions.create
            response = await create(
                model=self.model,
                messages=messages,
                temperature=0,
                max_tokens=self.max_tokens,
                response_format=self._response_format(schema),
            )
        except Exception as exc:
            raise _translate(exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        if not response.choices:
            raise JudgeCallError("empty_response", "no choices in the reply")
        text = response.choices[0].message.content or ""
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        cost = prompt_tokens * self.price_prompt + completion_tokens * self.price_completion
        # A reply cut at max_tokens is the usual cause of broken JSON from small models
        # (grammars allow endless whitespace); say so in the failure reason.
        truncated = response.choices[0].finish_reason == "length"
        return text, Usage(1, prompt_tokens, completion_tokens, cost, latency_ms,
                           truncated=truncated)

    async def complete(self, messages: Messages, schema: dict[str, Any]) -> tuple[str, Usage]:
        """One chat completion with budget, breaker, concurrency limit and retries."""
        attempt = 0
        while True:
            if self.budget.exhausted():
                raise JudgeOverBudget()
            if not self.breaker.allow():
                self._count("circuit_open")
                raise JudgeCallError("circuit_open", "judge endpoint failing; cooling down")
            try:
                async with self._semaphore:
                    text, usage = await self._call_once(messages, schema)
            except JudgeCallError as exc:
                if not exc.retryable:
                    self.breaker.success()  # the endpoint answered; the request was at fault
                    self._count(exc.code)
                    raise
                if attempt >= self.max_retries:
                    self.breaker.failure()
                    self._count(exc.code)
                    raise
                delay = exc.retry_after_s
                if delay is None:
                    delay = min(_BACKOFF_MAX_S, self.backoff_s * 2**attempt)
                    delay *= 0.5 + random.random()  # jitter: concurrent retries do not align
                attempt += 1
                self.stats.retries += 1
                log.warning(
                    "judge call failed, retrying",
                    extra={"code": exc.code, "attempt": attempt, "delay_s": round(delay, 3),
                           "model": self.model},
                )
                await self._sleep(delay)
                continue
            self.breaker.success()
            self.budget.add(usage.cost)
            s = self.stats
            s.calls += 1
            s.prompt_tokens += usage.prompt_tokens
            s.completion_tokens += usage.completion_tokens
            s.cost += usage.cost
            return text, usage

    async def ask(
        self, messages: Messages, schema: dict[str, Any], parse: Callable[[str], T]
    ) -> tuple[T, Usage]:
        """A parsed verdict: one call, one repair call if unparseable, else `JudgeCallError`."""
        text, usage = await self.complete(messages, schema)
        try:
            return parse(text), usage
        except VerdictFormatError as first:
            self.stats.repairs += 1
            log.info("judge verdict unparseable, asking for a repair",
                     extra={"model": self.model, "error": str(first)[:120]})
            text2, usage2 = await self.complete(repair_messages(messages, text, str(first)), schema)
            usage.add(usage2)
            usage.repaired = True
            try:
                return parse(text2), usage
            except VerdictFormatError as second:
                self.stats.unparseable += 1
                self._count("unparseable_verdict")
                cut = " (reply cut off at max_tokens)" if usage2.truncated else ""
                raise JudgeCallError("unparseable_verdict", str(second)[:150] + cut) from second

    def _count(self, code: str) -> None:
        self.stats.failures += 1
        self.stats.by_code[code] = self.stats.by_code.get(code, 0) + 1


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without keywords OpenAI strict mode rejects (string length limits)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in {"maxLength", "minLength"}:
            continue
        if isinstance(value, dict):
            out[key] = _strict(value)
        else:
            out[key] = value
    return out
