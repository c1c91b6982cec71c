"""Alert rules as data: a metric, a comparison, a baseline, a minimum sample and effect, a split.

Rules come from YAML (``alerts.rules_file``) or the built-in defaults shipped as package
data (``monitor/alerts/default_rules.yaml``). A rule file is a mapping with a ``rules`` list; each
rule is validated here, so a typo stops start-up with the rule's name and the field.

Metrics (what is measured per segment and minute of event time):

- ``helpfulness``            combined evidence of a drop: negative feedback, the judge's
                             ``params.dimension`` mean (weighed by its measured reliability)
                             and cheap quality signals (empty / truncated / refusal; a
                             refusal of a prompt flagged as an attack is not counted)
- ``judge_mean``             mean of one judge dimension (scorer='judge'), alarms on a drop
- ``negative_feedback_rate`` share of feedback with rating -1
- ``incident_rate``          share of events with a safety incident, one series per risk type
- ``toxicity_score``         share of toxicity-scored responses scoring above the baseline's
                             ``params.quantile`` score (1.0: above every baseline response),
                             so toxic answers the classifier scores under its incident
                             threshold still count
- ``latency_p95``            share of events slower than the baseline p95 (a p95 shift up)
- ``json_failure_rate``      share of JSON-required responses that are not valid JSON
- ``judge_failure_rate``     share of judge decisions that ended ``failed``
- ``drift``                  significant drift or a new topic in ``drift_reports``
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.config import read_yaml
from monitor.config.rules_file import describe, duplicate_names
from monitor.errors import ConfigError

DEFAULT_RULES = Path(__file__).resolve().parent / "default_rules.yaml"

Metric = Literal[
    "helpfulness",
    "judge_mean",
    "negative_feedback_rate",
    "incident_rate",
    "toxicity_score",
    "latency_p95",
    "json_failure_rate",
    "judge_failure_rate",
    "drift",
]
Dimension = Literal["model_version", "route", "topic", "risk_type"]

#: Metrics measured as a share of observations that went wrong (higher is worse).
RATE_METRICS = frozenset(
    {
        "negative_feedback_rate",
        "incident_rate",
        "toxicity_score",
        "latency_p95",
        "json_failure_rate",
        "judge_failure_rate",
    }
)


class Rule(BaseModel):
    """One alert rule. Effects are in the metric's unit: a share for rates, points for means."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    """Rule name, unique in the file (lower_snake_case)."""
    metric: Metric
    """What is measured (see the module docstring)."""
    comparison: Literal["baseline", "threshold"] = "baseline"
    """baseline: a sequential (CUSUM) test against the baseline; threshold: the value over
    ``window_minutes`` is compared with ``threshold`` (drift uses its own reports)."""
    threshold: float | None = None
    """For comparison=threshold: fire when the windowed value exceeds this."""
    baseline: Literal["start", "rolling", "pinned", "others"] = "start"
    """start: the first ``baseline_minutes`` of the stream; rolling: the ``baseline_minutes``
    before the test window; pinned: the span ({"start": ..., "end": ...}) stored under state
    key ``alerts.baseline``, else the drift job's pinned ``drift.baseline``; others: the
    other segments over the same window."""
    baseline_minutes: Annotated[float, Field(gt=0)] = 60.0
    """Length of the baseline span (start / rolling)."""
    window_minutes: Annotated[float, Field(gt=0)] = 240.0
    """How far back the sequential test looks (and the window of threshold comparisons)."""
    min_sample: Annotated[int, Field(ge=1)] = 30
    """Observations needed in the evidence span before the rule may fire."""
    min_effect: Annotated[float, Field(ge=0)] = 0.05
    """Smallest change worth an alert (the CUSUM is tuned to detect exactly this)."""
    min_ratio: Annotated[float, Field(ge=1)] = 1.0
    """For rates, also tune to at least ``baseline * min_ratio`` (relative effect)."""
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.002
    """About how many false alarms a day, per segment, clean traffic may cause."""
    split_by: list[Dimension] = Field(default_factory=list)
    """Evaluate one series per value of these (model_version, route, topic, risk_type)."""
    severity: Literal["critical", "warning", "info"] = "warning"
    """Shown in notifications."""
    for_evals: Annotated[int, Field(ge=1)] = 2
    """Consecutive breached evaluations before pending becomes firing."""
    resolve_minutes: Annotated[float, Field(ge=0)] = 60.0
    """Event minutes without a new breach (and with the effect under half the minimum)
    before a firing alert resolves: hysteresis against flapping."""
    cooldown_minutes: Annotated[float, Field(ge=0)] = 60.0
    """After resolving, a new breach of the same segment stays pending this long."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Metric-specific settings (see `PARAM_DEFAULTS`)."""
    enabled: bool = True
    """Switch a rule off without deleting it."""
    description: str = ""
    """What the rule is for, shown with its alerts."""

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.comparison == "threshold" and self.threshold is None and self.metric != "drift":
            raise ValueError("comparison 'threshold' needs a threshold")
        if "risk_type" in self.split_by and self.metric != "incident_rate":
            raise ValueError("split_by risk_type applies to metric incident_rate only")
        unknown = set(self.params) - set(PARAM_DEFAULTS.get(self.metric, {}))
        if unknown:
            raise ValueError(f"unknown params for {self.metric}: {', '.join(sorted(unknown))}")
        _check_sql_params(self.params)
        return self

    def param(self, key: str) -> Any:
        return self.params.get(key, PARAM_DEFAULTS[self.metric][key])


#: Boolean columns of the checks table that ``cheap_checks`` may name: they are written
#: into the SQL text as column names, so nothing else is accepted.
CHEAP_CHECKS = frozenset({"empty", "truncated", "refusal", "latency_slow", "too_long"})


def _check_sql_params(params: dict[str, Any]) -> None:
    """Params that reach SQL: column names from an allow-list, values of the right type
    (values themselves always travel as query parameters)."""
    if "cheap_checks" in params:
        checks = params["cheap_checks"]
        if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
            raise ValueError("params.cheap_checks must be a list of check names")
        bad = sorted(set(checks) - CHEAP_CHECKS)
        if bad:
            raise ValueError(
                f"params.cheap_checks: unknown check {bad[0]!r} "
                f"(one of {', '.join(sorted(CHEAP_CHECKS))})"
            )
    if "dimension" in params and not isinstance(params["dimension"], str):
        raise ValueError("params.dimension must be a judge dimension name (a string)")
    if "quantile" in params:
        q = params["quantile"]
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q <= 1:
            raise ValueError("params.quantile must be a number in (0, 1]")
    if not isinstance(params.get("excuse_flagged_refusals", True), bool):
        raise ValueError("params.excuse_flagged_refusals must be true or false")
    for key in ("risk_types", "kinds"):
        value = params.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"params.{key} must be a list of strings")


#: Metric-specific parameters and their defaults.
PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "helpfulness": {
        "dimension": "helpfulness",
        "judge_min_effect": 0.5,
        "judge_reliability": 0.2,
        "judge_sd_floor": 0.5,
        "feedback_min_effect": 0.05,
        "cheap_min_effect": 0.03,
        "cheap_weight": 0.25,
        "cheap_checks": ["empty", "truncated", "refusal"],
        "excuse_flagged_refusals": True,
    },
    "judge_mean": {"dimension": "helpfulness", "sd_floor": 0.5},
    "negative_feedback_rate": {},
    "incident_rate": {"risk_types": []},
    "latency_p95": {"quantile": 0.95},
    "toxicity_score": {"quantile": 1.0},
    "json_failure_rate": {},
    "judge_failure_rate": {},
    "drift": {"kinds": ["drift", "new_topic"], "max_age_minutes": 30.0},
}


class RuleSet(BaseModel):
    """A rules file: ``rules: [...]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        problem = duplicate_names(rule.name for rule in self.rules)
        if problem:
            raise ValueError(problem)
        return self


def parse_rules(data: Any, source: str = "rules") -> list[Rule]:
    """Validate already-loaded YAML/JSON data; `ConfigError` names the rule and field."""
    try:
        return [rule for rule in RuleSet.model_validate(data).rules if rule.enabled]
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc, data)}") from exc


def load_rules(path: Path | None = None) -> list[Rule]:
    """Rules from ``path``, or the built-in defaults when None."""
    path = path or DEFAULT_RULES
    return parse_rules(read_yaml(path, "alert rules"), f"alert rules {path}")
