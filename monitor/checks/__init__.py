"""Cheap checks run on every event: latency, length, truncation, refusals, JSON
compliance, PII in responses and jailbreak / prompt-injection patterns in prompts.

`Heuristics.check_many` is what the pipeline calls; the detectors (`pii`, `jailbreak`)
are also used by the embedding scorer (known attacks) and, later, PII scrubbing.
"""

from monitor.checks.heuristics import CHECKS_VERSION, CheckResult, Heuristics
from monitor.checks.jailbreak import (
    JailbreakPatterns,
    attack_text,
    contains_any,
    load_attack_examples,
    nearest_attack,
)
from monitor.checks.pii import find_pii, find_pii_many
from monitor.checks.scan import Joined

__all__ = [
    "CHECKS_VERSION",
    "CheckResult",
    "Heuristics",
    "JailbreakPatterns",
    "Joined",
    "attack_text",
    "contains_any",
    "find_pii",
    "find_pii_many",
    "load_attack_examples",
    "nearest_attack",
]
