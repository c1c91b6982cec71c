"""Capability regression: lm-evaluation-harness result files, baseline against candidate.

A results file is ``{"results": {task: {"acc,none": 0.61, "acc_stderr,none": 0.01, ...}}}``
(lm-eval 0.4: ``metric,filter`` keys) or the older ``{"acc": 0.61, "acc_stderr": 0.01}``;
groups (``"groups"``) are read like tasks. Each task is compared on one metric: the
first of ``benchmarks.metrics`` both files report (or the task's own ``metric``), on the
``none`` filter when there is one. A drop is in points: scores within 0-1 are multiplied
by 100 (accuracies), others (BLEU, already 0-100) are taken as they are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from monitor.errors import EvalsetError
from monitor.evalset.gate.thresholds import BenchmarkChecks

Status = Literal["pass", "warn", "fail"]
#: task -> metric name (filter kept: "exact_match,strict-match") -> (value, stderr)
Scores = dict[str, dict[str, tuple[float, float | None]]]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # "N/A", aliases, nested configs
    return float(value) if math.isfinite(value) else None


def _task_scores(metrics: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    out: dict[str, tuple[float, float | None]] = {}
    for key, raw in metrics.items():
        name, _, flt = key.partition(",")
        value = _number(raw)
        if value is None or name.endswith("_stderr"):
            continue
        stderr_key = f"{name}_stderr,{flt}" if flt else f"{name}_stderr"
        out[key] = (value, _number(metrics.get(stderr_key)))
    return out


def load_results(path: Path) -> Scores:
    """The task scores of one lm-evaluation-harness results file."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise EvalsetError(f"--benchmarks {path}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise EvalsetError(f"--benchmarks {path}: not valid JSON ({exc})") from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise EvalsetError(f"--benchmarks {path}: no \"results\" object "
                           "(expected an lm-evaluation-harness results file)")
    tables = [results]
    if isinstance(data.get("groups"), dict):
        tables.append(data["groups"])
    scores: Scores = {}
    for table in tables:
        for task, metrics in table.items():
            if isinstance(metrics, dict) and task not in scores:
                found = _task_scores(metrics)
                if found:
                    scores[task] = found
    return scores


def _pick(names: list[str], base: dict[str, Any], cand: dict[str, Any]) -> str | None:
    for name in names:
        for key in (f"{name},none", name):
            if key in base and key in cand:
                return key
        for key in base:  # the metric under another filter (strict-match, flexible...)
            if key.partition(",")[0] == name and key in cand:
                return key
    return None


@dataclass(frozen=True, slots=True)
class TaskComparison:
    task: str
    metric: str
    baseline: float | None
    candidate: float | None
    drop_points: float | None
    stderr_points: float | None
    status: Status
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status(drop: float, warn: float, fail: float) -> Status:
    drop = round(drop, 6)  # 0.61 - 0.56 is 5.000000000000004 points: that is 5, not more
    return "fail" if drop > fail else "warn" if drop > warn else "pass"


def compare(base: Scores, cand: Scores, checks: BenchmarkChecks) -> list[TaskComparison]:
    """One comparison per baseline task (sorted by name), flagged against the limits."""
    rows: list[TaskComparison] = []
    ignored = set(checks.ignore)
    for task in sorted(base):
        if task in ignored:
            continue
        if task not in cand:
            if checks.missing != "ignore":
                status: Status = "fail" if checks.missing == "fail" else "warn"
                rows.append(TaskComparison(task, "", None, None, None, None, status,
                                           "missing from the candidate's results"))
            continue
        override = checks.tasks.get(task)
        names = [override.metric] if override and override.metric else checks.metrics
        key = _pick(names, base[task], cand[task])
        if key is None:
            rows.append(TaskComparison(task, "", None, None, None, None, "warn",
                                       f"neither file reports {', '.join(names)} for both"))
            continue
        (b, b_se), (c, c_se) = base[task][key], cand[task][key]
        scale = 100.0 if 0.0 <= b <= 1.0 and 0.0 <= c <= 1.0 else 1.0
        se = (math.hypot(b_se, c_se) * scale if b_se is not None and c_se is not None
              else None)
        drop = (b - c) * scale
        warn, fail = checks.limits(task)
        rows.append(TaskComparison(task, key.replace(",none", ""), b, c, drop, se,
                                   _status(drop, warn, fail)))
    return rows
