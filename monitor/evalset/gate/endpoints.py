"""The models under test: ``URL[#model]`` endpoints and the cached, retried chat client.

``URL`` is an OpenAI-compatible base URL as the openai client takes it (``.../v1``); the
part after ``#`` is the model name. Without one, ``evalset.gate.default_model`` is used,
else the first model the endpoint lists (``GET /models``; llama.cpp and vLLM list the one
they serve).

Every call goes through `Caller.complete`: the response cache first, then the endpoint
with at most ``evalset.gate.concurrency`` requests in flight per base URL (candidate and
baseline on one server share it), and retries with exponential backoff on 429, 5xx,
timeouts and connection errors. The openai client's own retries are off so that every
attempt is counted here. A call that still fails stops the run (`EvalsetError`): a gate
must not pass on missing answers, and what was answered stays cached for the rerun.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import openai

from monitor.config.evalset import GateSettings
from monitor.errors import ConfigError, EvalsetError
from monitor.evalset.gate.cache import ResponseCache, cache_key

log = logging.getLogger("vigil.evalset.gate")

_BACKOFF_MAX_S = 20.0
_RETRY_AFTER_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model behind one OpenAI-compatible base URL; ``role`` names it in errors."""

    role: str
    url: str
    model: str = ""

    @property
    def label(self) -> str:
        return f"{self.url}#{self.model}" if self.model else self.url

    @property
    def loopback(self) -> bool:
        return (urlsplit(self.url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def parse_endpoint(role: str, text: str) -> Endpoint:
    """``URL[#model]``; `ConfigError` naming the flag for anything that is not."""
    url, _, model = text.strip().partition("#")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"--{role} {text!r}: give an http(s) base URL, e.g. "
                          "http://127.0.0.1:8080/v1#my-model")
    return Endpoint(role, url.rstrip("/"), model.strip())


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: text, how it ended, what it took, and whether the cache gave it."""

    text: str
    finish_reason: str
    latency_ms: float
    completion_tokens: int | None
    cached: bool = False

    def to_cache(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason,
                "latency_ms": self.latency_ms, "completion_tokens": self.completion_tokens}

    @staticmethod
    def from_cache(value: dict[str, Any]) -> Completion:
        return Completion(str(value["text"]), str(value.get("finish_reason") or ""),
                          float(value.get("latency_ms") or 0.0), value.get("completion_tokens"),
                          cached=True)


@dataclass
class CallStats:
    calls: int = 0
    cached: int = 0
    retries: int = 0
    by_role: dict[str, int] = field(default_factory=dict)


class _Retryable(Exception):
    def __init__(self, detail: str, after_s: float | None = None) -> None:
        super().__init__(detail)
        self.after_s = after_s


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return min(_RETRY_AFTER_MAX_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _classify(exc: Exception, endpoint: Endpoint) -> Exception:
    """openai errors -> `_Retryable` (try again) or `EvalsetError` (stop the run)."""
    if isinstance(exc, openai.APITimeoutError):
        return _Retryable("timeout")
    if isinstance(exc, openai.APIConnectionError):
        return _Retryable("connection error")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429 or exc.status_code >= 500:
            return _Retryable(f"HTTP {exc.status_code}", _retry_after(exc))
        return EvalsetError(f"{endpoint.role} endpoint {endpoint.label}: HTTP "
                            f"{exc.status_code}: {str(exc.message)[:200]}")
    if isinstance(exc, openai.OpenAIError):
        return EvalsetError(f"{endpoint.role} endpoint {endpoint.label}: {type(exc).__name__}: "
                            f"{str(exc)[:200]}")
    return exc


class Caller:
    """Chat completions for every endpoint of one run, through one response cache."""

    def __init__(self, settings: GateSettings, cache: ResponseCache) -> None:
        self.settings = settings
        self.cache = cache
        self.stats = CallStats()
        self._api_key = (settings.api_key.get_secret_value()
                         or os.environ.get("OPENAI_API_KEY", "") or "sk-none")
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._pending: dict[str, asyncio.Future[Completion]] = {}

    def _client(self, url: str) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        if url not in self._clients:
            self._clients[url] = openai.AsyncOpenAI(
                base_url=url, api_key=self._api_key, timeout=self.settings.timeout_s,
                max_retries=0,
            )
            self._limits[url] = asyncio.Semaphore(self.settings.concurrency)
        return self._clients[url], self._limits[url]

    async def _retrying(self, endpoint: Endpoint, attempt_once: Any) -> Any:
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except Exception as exc:  # classified below; anything unknown re-raised
                problem = _classify(exc, endpoint)
                if problem is exc:
                    raise
                if not isinstance(problem, _Retryable):
                    raise problem from exc
                if attempt >= self.settings.max_retries:
                    raise EvalsetError(
                        f"{endpoint.role} endpoint {endpoint.label}: {problem} after "
                        f"{attempt + 1} attempt(s)"
                    ) from exc
                delay = problem.after_s
                if delay is None:
                    delay = min(_BACKOFF_MAX_S, self.settings.backoff_s * 2**attempt)
                    delay *= 0.5 + random.random() / 2  # jitter: retries do not stampede
                attempt += 1
                self.stats.retries += 1
                log.info("gate call retried", extra={"role": endpoint.role,
                                                     "problem": str(problem), "attempt": attempt})
                await asyncio.sleep(delay)

    async def resolve(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` with its model: as given, the default setting, or the first listed."""
        if endpoint.model:
            return endpoint
        if self.settings.default_model:
            return replace(endpoint, model=self.settings.default_model)
        client, _ = self._client(endpoint.url)

        async def listing() -> Any:
            return await client.models.list()

        page = await self._retrying(endpoint, listing)
        models = [m.id for m in page.data]
        if not models:
            raise EvalsetError(f"{endpoint.role} endpoint {endpoint.url} lists no models; "
                               "name one as URL#model")
        return replace(endpoint, model=models[0])

    async def complete(self, endpoint: Endpoint, messages: list[dict[str, Any]],
                       params: dict[str, Any]) -> Completion:
        """The answer to ``messages``: from the cache, else from the endpoint (then cached)."""
        key = cache_key(endpoint.url, endpoint.model, messages, params)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cached += 1
            return Completion.from_cache(hit)
        pending = self._pending.get(key)
        if pending is not None:  # the same request is in flight: wait for its answer
            self.stats.cached += 1
            return replace(await asyncio.shield(pending), cached=True)
        task = asyncio.ensure_future(self._fetch(key, endpoint, messages, params))
        self._pending[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._pending.pop(key, None)

    async def _fetch(self, key: str, endpoint: Endpoint, messages: list[dict[str, Any]],
                     params: dict[str, Any]) -> Completion:
        client, limit = self._client(endpoint.url)

        async def once() -> Completion:
            async with limit:
                started = time.perf_counter()
                create: Any = client.chat.completions.create  # extra keys reach the server
                response = await create(model=endpoint.model, messages=messages, **params)
                latency_ms = (time.perf_counter() - started) * 1000.0
            self.stats.calls += 1
            self.stats.by_role[endpoint.role] = self.stats.by_role.get(endpoint.role, 0) + 1
            if not response.choices:
                raise EvalsetError(f"{endpoint.role} endpoint {endpoint.label}: no choices")
            choice = response.choices[0]
            usage = response.usage
            return Completion(choice.message.content or "", choice.finish_reason or "",
                              latency_ms, usage.completion_tokens if usage else None)

        completion: Completion = await self._retrying(endpoint, once)
        self.cache.put(key, endpoint.url, endpoint.model, completion.to_cache())
        return completion

    async def aclose(self) -> None:
        for task in self._pending.values():
            task.cancel()
        # Retrieve what they ended with, so nothing is logged as never retrieved.
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._pending.clear()
        for client in self._clients.values():
            await client.close()
