"""Settings: one pydantic-settings model, read from ``VIGIL_*`` env (nested with ``__``),
an optional YAML file, and explicit overrides (CLI flags), in that order of strength:
overrides > env > YAML > defaults.

Every field has a docstring (shown by ``vigil config show --explain``); unknown keys are
errors, so a typo stops start-up with a message naming the field instead of being ignored.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.analysis import AlertSettings, DriftSettings
from monitor.config.evalset import EvalsetSettings
from monitor.config.ingest import EventSettings, KafkaSettings, StoreSettings
from monitor.config.masking import mask_url
from monitor.config.ops import OpsSettings
from monitor.config.privacy import PrivacySettings, stricter
from monitor.config.results_export import ResultsExportSettings
from monitor.config.scoring import (
    EmbeddingSettings,
    HeuristicsSettings,
    JudgeSettings,
    RequeueSettings,
    SamplingSettings,
    ToxicitySettings,
)
from monitor.errors import ConfigError


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
    events: EventSettings = Field(default_factory=EventSettings)
    """Which event times are accepted (the rest is dead-lettered)."""
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
    evalset: EvalsetSettings = Field(default_factory=EvalsetSettings)
    """The eval-set library: failure capture, export, leakage check, regression gate."""
    requeue: RequeueSettings = Field(default_factory=RequeueSettings)
    """Scorer work left pending or failed (retryable) is queued again: live only."""
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    """PII redaction before storage and a shorter retention for the raw text."""
    export: ResultsExportSettings = Field(default_factory=ResultsExportSettings)
    """Results out: evaluation results as OpenTelemetry events over OTLP/HTTP (off by default)."""
    ops: OpsSettings = Field(default_factory=OpsSettings)
    """The worker's /healthz, /readyz and /metrics endpoints."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    """Level of the logs on stderr (`--log-level`): warnings and errors by default, INFO
    for what the worker and the jobs do, DEBUG for everything."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """Log format (`--log-format`): auto is readable text on a terminal and one JSON object
    per line otherwise (a file, a pipe, a log collector)."""

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.store.backend == "server" and not self.store.url:
            raise ValueError("store.url is required when store.backend is 'server'")
        days = self.privacy.raw_text_days
        if days is not None and days > self.store.ttl_days:
            raise ValueError(
                f"privacy.raw_text_days ({days}) must not exceed store.ttl_days"
                f" ({self.store.ttl_days}): the raw text cannot outlive its row"
            )
        return self

    def judge_settings(self) -> JudgeSettings:
        """``judge`` as the judge scorer runs it: its PII redaction raised to
        ``privacy.redact_pii`` where that hides more, so text kept from the store is never
        sent to a judge either (the judge identity follows, so caches never mix)."""
        mode = stricter(self.judge.pii_redaction(), self.privacy.redact_pii)
        if mode == self.judge.pii_redaction():
            return self.judge
        return self.judge.model_copy(update={"redact_pii": mode})

    def sampling_settings(self) -> SamplingSettings:
        """``sampling`` as the sampler runs it: with the bundled local judge (no
        ``judge.base_url``), the judge's budget is at most ``judge.local_budget_per_hour``,
        so a replay (which waits for every verdict it asks for) is not bound by a CPU model
        that takes seconds a verdict."""
        j = self.judge
        if not j.enabled or j.base_url or not j.autostart_local:
            return self.sampling
        per_minute = j.local_budget_per_hour / 60.0
        budgets = self.sampling.budget_per_minute
        if budgets.get("judge", math.inf) <= per_minute:
            return self.sampling
        # A bucket below one token never grants one: hold at least one verdict's worth.
        bursts = {**self.sampling.budget_burst, "judge": 1.0}
        return self.sampling.model_copy(
            update={"budget_per_minute": {**budgets, "judge": per_minute}, "budget_burst": bursts}
        )

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
    def evalset_dir(self) -> Path:
        """Where eval sets live (``evalset.dir``, else beside the store's data directory)."""
        return self.evalset.dir or self.store.data_dir.parent / "evalsets"

    @property
    def gate_cache_dir(self) -> Path:
        """The regression gate's response cache (``evalset.gate.cache_dir``, else beside
        the store's data directory)."""
        return self.evalset.gate.cache_dir or self.store.data_dir.parent / "gate-cache"

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
    """Effective settings as plain data with every secret masked, and the ``user:pass@``
    of every URL-valued setting (store.url, judge.base_url...) too (for `vigil config show`)."""

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
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
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
