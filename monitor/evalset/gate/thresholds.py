"""The gate's thresholds file (``gate.yaml``): which metrics must hold, and how far
benchmark tasks may fall.

Read and validated before the gate makes a single call: unknown keys and unknown metric
names are errors naming the field, so a typo can never silently turn a check off.

Metric checks compare the candidate's point estimate (intervals are reported, not
gated on): ``min``/``max`` bound the candidate's value, ``max_drop`` bounds how far it
may fall below the baseline and ``max_rise`` how far it may climb above it (for metrics
where lower is better: latency, toxicity), all in the metric's own units (rates 0-1,
judge scores 1-5, milliseconds, characters). Benchmark drops are in points (a score of
0-1 times 100).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.config import read_yaml
from monitor.errors import ConfigError

NonNegative = Annotated[float, Field(ge=0)]

#: Every metric the gate measures, by name; ``judge.<dimension>`` and ``pass@<k>`` are
#: patterns (the rubric's dimensions and the configured samples decide which exist).
FIXED_METRICS: tuple[str, ...] = (
    "exact_match", "token_f1", "rouge_l", "semantic_similarity",
    "judge.overall",
    "pairwise.win_rate", "pairwise.loss_rate", "pairwise.tie_rate", "pairwise.flip_rate",
    "safety.safe_rate", "safety.toxic_rate", "safety.pii_rate", "safety.refusal_rate",
    "format.json_rate",
    "latency.p50_ms", "latency.p95_ms", "latency.p99_ms",
    "length.mean_chars",
)
_PATTERNS = (re.compile(r"^judge\.[a-z][a-z0-9_]{0,39}$"), re.compile(r"^pass@[1-9][0-9]{0,2}$"))


def known_metric(name: str) -> bool:
    return name in FIXED_METRICS or any(p.match(name) for p in _PATTERNS)


class MetricCheck(BaseModel):
    """The rules one metric must meet (at least one of min, max, max_drop, max_rise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    """Fail when the candidate's value is below this."""
    max: float | None = None
    """Fail when the candidate's value is above this."""
    max_drop: NonNegative | None = None
    """Fail when the candidate is more than this below the baseline."""
    max_rise: NonNegative | None = None
    """Fail when the candidate is more than this above the baseline."""
    level: Literal["fail", "warn"] = "fail"
    """``warn``: a broken rule is reported but does not fail the gate."""
    required: bool = False
    """Fail when the metric could not be measured (no reference items, no ``--judge``...);
    otherwise such a check is reported as skipped."""

    @model_validator(mode="after")
    def _some_rule(self) -> MetricCheck:
        if all(v is None for v in (self.min, self.max, self.max_drop, self.max_rise)):
            raise ValueError("give at least one of min, max, max_drop, max_rise")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class BenchmarkTask(BaseModel):
    """Overrides for one lm-evaluation-harness task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_drop: NonNegative | None = None
    """Points of drop above which the task warns (default: the section's)."""
    fail_drop: NonNegative | None = None
    """Points of drop above which the task fails the gate (default: the section's)."""
    metric: str | None = None
    """The task's metric to compare (``acc``, ``acc_norm``...); default: the first of
    ``metrics`` the task reports."""


class BenchmarkChecks(BaseModel):
    """How far lm-evaluation-harness task scores may fall (``--benchmarks BASE CAND``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_drop: NonNegative = 3.0
    """Points (score x 100) of drop above which a task warns."""
    fail_drop: NonNegative = 5.0
    """Points of drop above which a task fails the gate."""
    metrics: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["acc_norm", "acc", "exact_match", "f1", "pass@1", "mc2", "bleu"]
    )
    """Metric preference: each task is compared on the first of these both files report."""
    tasks: dict[str, BenchmarkTask] = Field(default_factory=dict)
    """Per-task overrides."""
    ignore: list[str] = Field(default_factory=list)
    """Tasks not compared."""
    missing: Literal["ignore", "warn", "fail"] = "warn"
    """A task in the baseline file that the candidate's file lacks."""

    @model_validator(mode="after")
    def _ordered(self) -> BenchmarkChecks:
        if self.warn_drop > self.fail_drop:
            raise ValueError(f"warn_drop {self.warn_drop} is above fail_drop {self.fail_drop}")
        return self

    def limits(self, task: str) -> tuple[float, float]:
        """(warn, fail) drops in points for ``task``."""
        override = self.tasks.get(task)
        warn = override.warn_drop if override and override.warn_drop is not None else None
        fail = override.fail_drop if override and override.fail_drop is not None else None
        return (self.warn_drop if warn is None else warn, self.fail_drop if fail is None else fail)


class Thresholds(BaseModel):
    """The whole thresholds file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: dict[str, MetricCheck] = Field(default_factory=dict)
    """Metric name -> its rules."""
    benchmarks: BenchmarkChecks = Field(default_factory=BenchmarkChecks)
    """Capability regression on lm-evaluation-harness results."""

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: dict[str, MetricCheck]) -> dict[str, MetricCheck]:
        for name in value:
            if not known_metric(name):
                raise ValueError(
                    f"unknown metric {name!r} (known: {', '.join(FIXED_METRICS)}, "
                    "judge.<dimension>, pass@<k>)"
                )
        return value


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "top level"


def parse_thresholds(data: object, source: str) -> Thresholds:
    """Validate a parsed thresholds document; `ConfigError` naming the first bad field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"thresholds {source}: the top level must be a mapping")
    try:
        return Thresholds.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = _where(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(f"thresholds {source}: {where}: {message}") from exc


def load_thresholds(path: Path) -> Thresholds:
    """Read and validate ``path`` (YAML)."""
    return parse_thresholds(read_yaml(path, "thresholds"), str(path))


def check_against_rubric(thresholds: Thresholds, dimensions: list[str] | None, samples: int,
                         source: str) -> None:
    """Names the rubric or the sample count rule out: ``judge.<dim>`` of a dimension the
    rubric lacks (when a judge is used), ``pass@k`` with k above the samples per item."""
    for name in thresholds.metrics:
        if dimensions is not None and name.startswith("judge.") and name != "judge.overall":
            dimension = name.removeprefix("judge.")
            if dimension not in dimensions:
                raise ConfigError(
                    f"thresholds {source}: metrics.{name}: the rubric has no dimension "
                    f"{dimension!r} (it has {', '.join(dimensions)})"
                )
        if name.startswith("pass@") and int(name[5:]) > samples:
            raise ConfigError(
                f"thresholds {source}: metrics.{name}: k is above evalset.gate.samples "
                f"({samples}); pass@k needs at least k answers per code item"
            )
