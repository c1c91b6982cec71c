"""Failure-capture rules as data: what counts as a production failure worth keeping.

Rules come from YAML (``evalset.capture.rules_file``) or the built-in defaults shipped as
package data (``monitor/evalset/default_capture.yaml``). A file is a mapping with a
``rules`` list; each rule has a ``name`` (the ``reason`` its failures are stored under)
and a ``kind``:

- ``judge``      a judge dimension at or below ``threshold`` (``judgments.scores`` or
                 ``scores`` with scorer 'judge')
- ``toxicity``   the toxicity score at or over ``threshold``
- ``pii``        PII in the response (``checks.pii_kinds``; ``pii_kinds`` narrows it)
- ``feedback``   user feedback with a rating at or below ``max_rating`` (-1)
- ``format``     a JSON-required response that is not valid JSON for its schema
- ``empty``      an empty answer; ``truncated``: an answer cut off (finish_reason length)
- ``jailbreak``  a jailbreak attempt in the prompt that got an answer, not a refusal
- ``alert``      an example event of a firing alert (its stored ``query``)

Unknown keys are errors naming the rule and the field, like every other setting.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.config import PiiKind, read_yaml
from monitor.config.rules_file import describe, duplicate_names
from monitor.errors import ConfigError

DEFAULT_CAPTURE = Path(__file__).resolve().parent / "default_capture.yaml"

#: The kinds that read the ``checks`` table (one scan serves all of them).
CHECK_KINDS = frozenset({"pii", "format", "empty", "truncated", "jailbreak"})


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    """Rule name, unique in the file: the ``reason`` its failures are stored under."""
    enabled: bool = True
    """Switch a rule off without deleting it."""
    description: str = ""
    """What the rule is for."""

    @property
    def version(self) -> str:
        """A hash of what the rule matches (not its description or switch): rows carry
        it, so a changed threshold is visible in what was captured under it."""
        definition = self.model_dump(mode="json", exclude={"description", "enabled"})
        digest = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS))
        return digest.hexdigest()[:12]


class JudgeRule(_Rule):
    """A judge dimension scored at or below a threshold."""

    kind: Literal["judge"]
    dimension: Annotated[str, Field(min_length=1)] = "helpfulness"
    """The rubric dimension (the score's name)."""
    threshold: Annotated[float, Field(ge=1, le=5)] = 2.0
    """Capture verdicts at or below this (1-5)."""


class ToxicityRule(_Rule):
    """A toxicity score at or over a threshold."""

    kind: Literal["toxicity"]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Capture scores at or over this."""
    scorer: str = "toxicity"
    """The scorer whose score is read."""
    score_name: str = "toxicity"
    """The score's name (``scores.name``)."""


class PiiRule(_Rule):
    """PII found in the response by the every-event check."""

    kind: Literal["pii"]
    pii_kinds: list[PiiKind] = Field(default_factory=list)
    """Only these kinds (empty: any kind the check found)."""


class FeedbackRule(_Rule):
    """Negative user feedback (its comment goes into the eval item)."""

    kind: Literal["feedback"]
    max_rating: int = -1
    """Capture ratings at or below this."""


class FormatRule(_Rule):
    """A response on a JSON-required route that is not valid JSON for its schema."""

    kind: Literal["format"]


class EmptyRule(_Rule):
    """An empty answer."""

    kind: Literal["empty"]


class TruncatedRule(_Rule):
    """An answer cut off at the token limit."""

    kind: Literal["truncated"]


class JailbreakRule(_Rule):
    """A jailbreak or prompt-injection attempt that got an answer instead of a refusal."""

    kind: Literal["jailbreak"]


class AlertRule(_Rule):
    """The example events of a firing alert (its stored query; first column event_id)."""

    kind: Literal["alert"]
    alert_rules: list[str] = Field(default_factory=list)
    """Only alerts of these alert rules (empty: every alert)."""


AnyRule = (
    JudgeRule
    | ToxicityRule
    | PiiRule
    | FeedbackRule
    | FormatRule
    | EmptyRule
    | TruncatedRule
    | JailbreakRule
    | AlertRule
)
CaptureRule = Annotated[AnyRule, Field(discriminator="kind")]
KINDS = (
    "judge",
    "toxicity",
    "pii",
    "feedback",
    "format",
    "empty",
    "truncated",
    "jailbreak",
    "alert",
)


class CaptureRuleSet(BaseModel):
    """A capture rules file: ``rules: [...]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[CaptureRule]

    @model_validator(mode="after")
    def _unique(self) -> CaptureRuleSet:
        problem = duplicate_names(rule.name for rule in self.rules)
        if problem:
            raise ValueError(problem)
        return self


def parse_capture_rules(data: Any, source: str = "capture rules") -> list[AnyRule]:
    """Validate loaded YAML data; `ConfigError` naming the rule and the field."""
    try:
        return [rule for rule in CaptureRuleSet.model_validate(data).rules if rule.enabled]
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc, data, KINDS)}") from exc


def load_capture_rules(path: Path | None = None) -> list[AnyRule]:
    """Rules from ``path``, or the built-in defaults when None."""
    path = path or DEFAULT_CAPTURE
    return parse_capture_rules(read_yaml(path, "capture rules"), f"capture rules {path}")


__all__ = [
    "CHECK_KINDS",
    "DEFAULT_CAPTURE",
    "KINDS",
    "AlertRule",
    "AnyRule",
    "CaptureRule",
    "EmptyRule",
    "FeedbackRule",
    "FormatRule",
    "JailbreakRule",
    "JudgeRule",
    "PiiRule",
    "ToxicityRule",
    "TruncatedRule",
    "load_capture_rules",
    "parse_capture_rules",
]
