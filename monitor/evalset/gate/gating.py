"""The gate's decision: every rule of the thresholds file against the measured metrics
and the benchmark comparison, each a pass, fail, warn or skipped check.

The gate fails when any check fails; warnings and skipped checks are reported only.
Values are compared rounded to 9 decimals, so float noise (0.1 + 0.2) never decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from monitor.evalset.gate.benchmarks import TaskComparison
from monitor.evalset.gate.measure import Metric
from monitor.evalset.gate.thresholds import MetricCheck, Thresholds

Status = Literal["pass", "fail", "warn", "skipped"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    """``metric:rule`` (``exact_match:min``) or ``benchmark:<task>``."""
    status: Status
    value: float | None
    limit: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 9)


def _metric_checks(name: str, rule: MetricCheck, metric: Metric | None) -> list[Check]:
    cand = _finite(metric.candidate.value) if metric and metric.candidate else None
    base = _finite(metric.baseline.value) if metric and metric.baseline else None
    broken: Status = "fail" if rule.level == "fail" else "warn"
    missing: Status = "fail" if rule.required else "skipped"
    out = []
    bounds = (("min", rule.min), ("max", rule.max), ("max_drop", rule.max_drop),
              ("max_rise", rule.max_rise))
    for kind, limit in bounds:
        if limit is None:
            continue
        check = f"{name}:{kind}"
        if cand is None:
            out.append(Check(check, missing, None, limit, "not measured in this run"))
            continue
        if kind in ("min", "max"):
            ok = cand >= limit if kind == "min" else cand <= limit
            word = "at least" if kind == "min" else "at most"
            out.append(Check(check, "pass" if ok else broken, cand, limit,
                             f"candidate {cand:.4g}, must be {word} {limit:g}"))
            continue
        if base is None:
            out.append(Check(check, missing, None, limit, "no baseline value to compare with"))
            continue
        change = round(base - cand if kind == "max_drop" else cand - base, 9)
        word = "drop" if kind == "max_drop" else "rise"
        out.append(Check(check, "pass" if change <= limit else broken, change, limit,
                         f"{word} {change:.4g} vs baseline {base:.4g} (allowed {limit:g})"))
    return out


def evaluate(thresholds: Thresholds, metrics: Sequence[Metric],
             benchmarks: Sequence[TaskComparison]) -> list[Check]:
    """Every check, metric rules first (in the file's order), then benchmark tasks."""
    by_name: Mapping[str, Metric] = {m.name: m for m in metrics}
    checks: list[Check] = []
    for name, rule in thresholds.metrics.items():
        checks.extend(_metric_checks(name, rule, by_name.get(name)))
    for row in benchmarks:
        if row.drop_points is None:
            checks.append(Check(f"benchmark:{row.task}", row.status, None, None, row.note))
            continue
        warn, fail = thresholds.benchmarks.limits(row.task)
        checks.append(Check(
            f"benchmark:{row.task}", row.status, round(row.drop_points, 6), fail,
            f"{row.metric} {row.baseline:.4g} -> {row.candidate:.4g}: drop "
            f"{row.drop_points:.2f} points (warn above {warn:g}, fail above {fail:g})",
        ))
    return checks


def failed(checks: Sequence[Check]) -> list[str]:
    return [c.name for c in checks if c.status == "fail"]
