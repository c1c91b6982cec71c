"""What each rule's metric measures: its components, the per-minute sums to fetch for them,
its baseline latency limits and the failing-example query stored with its alerts.

This side decides *what* to ask (which sums, split by which dimensions, with which rule
parameters); `monitor.store.queries.alerts` owns *how* (the SQL). The sums come back as
a `Series` per segment and minute of event time, ready for `monitor.alerts.model`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.alerts.model import Component
from monitor.alerts.rules import Rule
from monitor.errors import ConfigError
from monitor.store.base import Store
from monitor.store.queries import alert_examples as qx
from monitor.store.queries import alerts as q
from monitor.store.queries import toxicity_alerts as qt

#: Series: segment key -> minute -> named sums. Segments: key -> {dimension: value}.
Series = dict[str, dict[int, dict[str, float]]]
Segments = dict[str, dict[str, str]]

RISK_TYPES = ("toxicity", "pii", "jailbreak")

#: Metrics that count observations over a limit measured on the baseline, per segment.
LIMIT_METRICS = frozenset({"latency_p95", "toxicity_score"})


def components(rule: Rule, judge_weight: float | None = None) -> list[Component]:
    """The signals a rule's metric is made of (see `monitor.alerts.model`)."""
    m = rule.metric
    if m == "helpfulness":
        weight = rule.param("judge_reliability") if judge_weight is None else judge_weight
        return [
            Component("negative feedback", "rate", "f", 1.0, rule.param("feedback_min_effect")),
            Component(
                f"judge {rule.param('dimension')}",
                "mean",
                "j",
                weight,
                rule.param("judge_min_effect"),
                sd_floor=rule.param("judge_sd_floor"),
            ),
            Component(
                "empty/truncated/refused",
                "rate",
                "c",
                rule.param("cheap_weight"),
                rule.param("cheap_min_effect"),
                counts=False,
            ),
        ]
    if m == "judge_mean":
        return [
            Component(
                f"judge {rule.param('dimension')}",
                "mean",
                "",
                1.0,
                rule.min_effect,
                sd_floor=rule.param("sd_floor"),
            )
        ]
    labels = {
        "negative_feedback_rate": "negative feedback",
        "incident_rate": "incidents",
        "latency_p95": "slower than baseline p95",
        "toxicity_score": "toxicity above the baseline's",
        "json_failure_rate": "invalid JSON",
        "judge_failure_rate": "judge failures",
    }
    return [Component(labels[m], "rate", "", 1.0, rule.min_effect, rule.min_ratio)]


def split_dims(rule: Rule) -> list[str]:
    """The dimensions stored per event that ``rule`` splits by (risk types are per incident)."""
    if "topic" in rule.split_by:
        raise ConfigError(
            f"rule {rule.name}: split_by topic needs per-event topic clusters, "
            "which no stage stores yet"
        )
    return [str(d) for d in rule.split_by if d != "risk_type"]


def segment_key(dims: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in dims.items())


def _minute_rows(
    store: Store,
    rule: Rule,
    lo: datetime,
    hi: datetime,
    thresholds: Mapping[str, float] | None,
) -> list[q.Result]:
    dims = split_dims(rule)
    m = rule.metric
    if m == "helpfulness":
        return [
            q.feedback_minutes(store, dims, lo, hi, prefix="f"),
            q.judge_minutes(store, dims, lo, hi, rule.param("dimension"), prefix="j"),
            q.cheap_check_minutes(
                store,
                dims,
                lo,
                hi,
                list(rule.param("cheap_checks")),
                bool(rule.param("excuse_flagged_refusals")),
            ),
        ]
    if m == "negative_feedback_rate":
        return [q.feedback_minutes(store, dims, lo, hi)]
    if m == "judge_mean":
        return [q.judge_minutes(store, dims, lo, hi, rule.param("dimension"))]
    if m == "json_failure_rate":
        return [q.json_failure_minutes(store, dims, lo, hi)]
    if m == "judge_failure_rate":
        return [q.judge_failure_minutes(store, dims, lo, hi)]
    if m in LIMIT_METRICS:
        # The per-segment limits travel as parallel arrays ('*' is all traffic, the default).
        limits = thresholds or {}
        keys = [k for k in limits if k != "*"] or ["-"]
        vals = [limits.get(k, 0.0) for k in keys]
        if m == "latency_p95":
            slow = q.Limits(keys, vals, limits.get("*", 0.0))
            return [q.slow_request_minutes(store, dims, lo, hi, slow)]
        # The events (en) and the scored ones (sn) say what share the test cannot see.
        return [
            qt.toxicity_over_minutes(
                store, dims, lo, hi, q.Limits(keys, vals, limits.get("*", 1.0))
            ),
            q.event_minutes(store, dims, lo, hi, prefix="e"),
            qt.scored_minutes(store, dims, lo, hi, "toxicity"),
        ]
    if m == "incident_rate":
        types = list(rule.param("risk_types"))
        return [
            q.event_minutes(store, dims, lo, hi),
            q.incident_minutes(store, dims, lo, hi, types, "risk_type" in rule.split_by),
        ]
    raise AssertionError(m)  # pragma: no cover - drift is read elsewhere


def fetch(
    store: Store,
    rule: Rule,
    lo: datetime,
    hi: datetime,
    thresholds: Mapping[str, float] | None = None,
) -> tuple[Series, Segments]:
    """Per-segment, per-minute sums of ``rule``'s metric over [lo, hi).

    ``thresholds`` (`LIMIT_METRICS` only): the baseline limit per segment key, '*' for
    all traffic, as `baseline_limits` returns them.
    """
    series: Series = defaultdict(lambda: defaultdict(dict))
    segments: Segments = {}
    plain = split_dims(rule)
    results = _minute_rows(store, rule, lo, hi, thresholds)
    if rule.metric == "incident_rate":
        _merge_incidents(rule, results[0], results[1], series, segments, plain)
        return series, segments
    for rows in results:
        for row in rows:
            dims = {d: str(row[f"d_{d}"]) for d in plain}
            key = segment_key(dims)
            segments[key] = dims
            cell = series[key][int(row["b"])]
            for name, value in row.items():
                if not name.startswith("d_") and name != "b":
                    cell[name] = cell.get(name, 0.0) + float(value or 0.0)
    return series, segments


def _merge_incidents(
    rule: Rule,
    events: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
    series: Series,
    segments: Segments,
    plain: list[str],
) -> None:
    # Incidents are counted against every event in the segment and minute, so a minute with
    # events and no incident is a zero, not a gap.
    split_type = "risk_type" in rule.split_by
    types = list(rule.param("risk_types")) or list(RISK_TYPES)
    if split_type:
        types += sorted({str(r["d_risk_type"]) for r in incidents} - set(types))
    hits: dict[tuple[str, str, int], float] = {}
    for row in incidents:
        base = segment_key({d: str(row[f"d_{d}"]) for d in plain})
        rtype = str(row["d_risk_type"]) if split_type else ""
        hits[(base, rtype, int(row["b"]))] = float(row["x"])
    for row in events:
        dims = {d: str(row[f"d_{d}"]) for d in plain}
        base = segment_key(dims)
        b = int(row["b"])
        for rtype in types if split_type else [""]:
            full = {**dims, "risk_type": rtype} if split_type else dims
            key = segment_key(full)
            segments[key] = full
            series[key][b] = {"n": float(row["n"]), "x": hits.get((base, rtype, b), 0.0)}


def baseline_limits(store: Store, rule: Rule, lo: datetime, hi: datetime) -> dict[str, float]:
    """The baseline's ``params.quantile`` of latency (latency_p95) or of the toxicity score
    (toxicity_score) per segment ('*' = all traffic) over [lo, hi)."""
    quantile = float(rule.param("quantile"))
    dims = split_dims(rule)
    of = q.latency_quantiles if rule.metric == "latency_p95" else qt.toxicity_quantiles
    out: dict[str, float] = {}
    for row in of(store, dims, quantile, lo, hi):
        if int(row["n"]) >= rule.min_sample:
            out[segment_key({d: str(row[f"d_{d}"]) for d in dims})] = float(row["t"])
    overall = of(store, [], quantile, lo, hi)
    if overall and int(overall[0]["n"]) > 0:
        out["*"] = float(overall[0]["t"])
    return out


def judge_pairs(store: Store, rule: Rule, lo: datetime, hi: datetime) -> list[tuple[float, int]]:
    """(judge score, feedback rating) for events that have both, rating != 0."""
    return q.judge_feedback_pairs(store, rule.param("dimension"), lo, hi)


def examples_query(
    rule: Rule,
    db: str,
    segment: dict[str, str],
    lo: datetime,
    hi: datetime,
    latency_over: float | None = None,
) -> str:
    """The failing-events query stored with an alert of ``rule`` ('' when it has none)."""
    m = rule.metric
    return qx.examples_query(
        db,
        m,
        segment,
        lo,
        hi,
        judge_dimension=rule.param("dimension") if m in ("helpfulness", "judge_mean") else "",
        cheap_checks=list(rule.param("cheap_checks")) if m == "helpfulness" else [],
        excuse_flagged_refusals=m == "helpfulness" and bool(rule.param("excuse_flagged_refusals")),
        latency_over=latency_over,
    )
