"""Where the judge's questions go: the configured endpoint(s), or a server started here.

With ``judge.base_url`` set, the clients talk to that endpoint (and the cascade's strong
model to ``judge.cascade.base_url``, else the same one). With it empty, the first call
starts a local llama.cpp server (`monitor.scorers.judge.llama_server`) serving
``judge.local_model_path`` or the bundled SmolLM2, unless ``judge.autostart_local`` is
off; a failed start is remembered, so later batches fail at once instead of retrying it.
`JudgeEndpoints.aclose` closes the clients and stops the server it started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NamedTuple

from monitor.config import JudgeSettings
from monitor.config.masking import mask_url
from monitor.errors import JudgeError
from monitor.scorers.judge.client import ClientStats, JudgeClient, StructuredOutput, openai_httpx
from monitor.scorers.judge.guards import CircuitBreaker, CostBudget
from monitor.scorers.judge.llama_server import SERVER_PARALLELISM, LlamaServer, start_local_server

log = logging.getLogger("vigil.judge")

HttpClientFactory = Callable[[], openai_httpx.AsyncClient]


class Judges(NamedTuple):
    """The clients a verdict is asked of."""

    cheap: JudgeClient
    """Asked first, always."""
    strong: JudgeClient | None
    """The cascade's strong judge, asked on borderline verdicts; None when the cascade is off."""


class JudgeEndpoints:
    """Builds the judge clients on first use (starting the local server when needed)."""

    def __init__(
        self,
        settings: JudgeSettings,
        budget: CostBudget,
        http_client_factory: HttpClientFactory | None = None,
    ) -> None:
        self.settings = settings
        self.local = not settings.base_url
        # The local llama.cpp server answers one request at a time; more in flight only
        # queue there and run into the client timeout. Two keep it busy between calls.
        limit = SERVER_PARALLELISM + 1 if self.local else settings.concurrency
        self.concurrency = min(settings.concurrency, limit)
        self.structured_output: StructuredOutput = (
            ("json_object_schema" if self.local else "json_schema")
            if settings.structured_output == "auto"
            else settings.structured_output
        )
        self.description = (
            mask_url(settings.base_url) or "local llama.cpp server (not started yet)"
        )
        """Where verdicts come from, for the run summary."""
        self.server: LlamaServer | None = None
        """The local server, while this object runs one."""
        self.clients: list[JudgeClient] = []
        """Every client built; kept after `aclose`, their counters feed the run summary."""
        self._budget = budget
        self._http_factory = http_client_factory
        self._judges: Judges | None = None
        self._start_lock = asyncio.Lock()
        self._start_error: JudgeError | None = None

    async def judges(self) -> Judges:
        """The clients, built (and the local server started) on the first call.

        Raises `JudgeError` when there is no endpoint or the local server cannot start.
        """
        if self._judges is not None:
            return self._judges
        async with self._start_lock:
            if self._judges is not None:
                return self._judges
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
            self._judges = Judges(cheap, strong)
            self.clients = [c for c in self._judges if c is not None]
            return self._judges

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
            self.server = await asyncio.to_thread(
                start_local_server, s.local_model_path or None, alias=s.model,
                n_ctx=s.local_n_ctx, n_threads=s.local_threads,
            )
        except JudgeError as exc:
            self._start_error = exc
            raise
        self.description = (
            f"local llama.cpp {self.server.model_path.name} at {self.server.base_url} "
            f"(started by vigil, pid {self.server.pid})"
        )
        log.info("local judge server started", extra={"endpoint": self.server.base_url,
                                                      "pid": self.server.pid})
        return self.server.base_url

    def call_stats(self) -> ClientStats:
        """The clients' counters, summed (calls, retries, repairs, tokens, failure codes)."""
        total = ClientStats()
        for client in self.clients:
            st = client.stats
            total.calls += st.calls
            total.retries += st.retries
            total.repairs += st.repairs
            total.prompt_tokens += st.prompt_tokens
            total.completion_tokens += st.completion_tokens
            for code, n in st.by_code.items():
                total.by_code[code] = total.by_code.get(code, 0) + n
        return total

    async def aclose(self) -> None:
        """Close the clients and stop the local server, if one was started."""
        judges, self._judges = self._judges, None
        for client in judges or ():
            if client is not None:
                await client.aclose()
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
