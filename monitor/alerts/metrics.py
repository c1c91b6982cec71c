"""The SQL side of alert metrics: per-segment, per-minute sums, and failing-example queries.

Every metric becomes one or more queries over [lo, hi) of *event* time, each returning the
split dimensions, the minute ``b`` (Unix minutes) and named sums (``n``, ``x``, ``s``,
``ss``, with a component prefix). Counts use ``uniqExact(event_id)`` or ``FINAL`` so rows
redelivered into the ReplacingMergeTrees do not count twice before they merge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.alerts.model import Component
from monitor.alerts.rules import Rule
from monitor.errors import ConfigError
from monitor.store.base import Store, render

#: Series: segment key -> minute -> named sums. Segments: key -> {dimension: value}.
Series = dict[str, dict[int, dict[str, float]]]
Segments = dict[str, dict[str, str]]

RISK_TYPES = ("toxicity", "pii", "jailbreak")
_RANGE = "ts >= {lo:DateTime64} AND ts < {hi:DateTime64}"


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
        "json_failure_rate": "invalid JSON",
        "judge_failure_rate": "judge failures",
    }
    return [Component(labels[m], "rate", "", 1.0, rule.min_effect, rule.min_ratio)]


def _dims(rule: Rule, alias: str = "") -> list[str]:
    if "topic" in rule.split_by:
        raise ConfigError(
            f"rule {rule.name}: split_by topic needs per-event topic clusters, "
            "which no stage stores yet"
        )
    prefix = f"{alias}." if alias else ""
    return [f"toString({prefix}{d}) AS d_{d}" for d in rule.split_by if d != "risk_type"]


def _group(rule: Rule, extra: Sequence[str] = ()) -> str:
    names = [f"d_{d}" for d in rule.split_by if d != "risk_type"] + list(extra) + ["b"]
    return ", ".join(names)


def segment_key(dims: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in dims.items())


def _key_sql(rule: Rule) -> str:
    # The same key as `segment_key`, computed by ClickHouse (for per-segment thresholds).
    parts = [d for d in rule.split_by if d != "risk_type"]
    if not parts:
        return "''"
    pieces: list[str] = []
    for i, d in enumerate(parts):
        pieces += [("," if i else "") + f"'{d}='", f"toString({d})"]
    return "concat(" + ", ".join(pieces) + ")"


def _select(rule: Rule, sums: str, source: str, where: str, alias: str = "") -> str:
    dims = ", ".join([*_dims(rule, alias), ""]) if _dims(rule) else ""
    ts = f"{alias}.ts" if alias else "ts"
    return (
        f"SELECT {dims}intDiv(toUnixTimestamp({ts}), 60) AS b, {sums} FROM {source} "
        f"WHERE {where} GROUP BY {_group(rule)}"
    )


def _sources(rule: Rule, db: str, extra: dict[str, Any]) -> list[str]:
    m = rule.metric
    checks = f"{db}.checks"
    feedback = (
        f"SELECT {', '.join([*_dims(rule, 'c'), ''])}intDiv(toUnixTimestamp(c.ts), 60) AS b, "
        "uniqExact(f.event_id) AS {p}n, uniqExactIf(f.event_id, f.rating < 0) AS {p}x "
        f"FROM {db}.feedback AS f FINAL INNER JOIN "
        "(SELECT DISTINCT event_id, ts, route, model_version "
        f"FROM {checks} WHERE {_RANGE}) AS c "
        f"ON f.event_id = c.event_id WHERE f.ts < {{hi:DateTime64}} GROUP BY {_group(rule)}"
    )
    judge = _select(
        rule,
        "count() AS {p}n, sum(value) AS {p}s, sum(value * value) AS {p}ss",
        f"{db}.scores FINAL",
        f"scorer = 'judge' AND name = {{dimension:String}} AND {_RANGE} AND event_id IN "
        f"(SELECT event_id FROM {db}.decisions WHERE scorer = 'judge' "
        f"AND reason LIKE 'rate:%' AND {_RANGE})",
    )
    if m == "helpfulness":
        checks_any = " OR ".join(f"{c} = 1" for c in rule.param("cheap_checks")) or "0"
        cheap = _select(
            rule,
            f"uniqExact(event_id) AS cn, uniqExactIf(event_id, {checks_any}) AS cx",
            checks,
            _RANGE,
        )
        return [feedback.replace("{p}", "f"), judge.replace("{p}", "j"), cheap]
    if m == "negative_feedback_rate":
        return [feedback.replace("{p}", "")]
    if m == "judge_mean":
        return [judge.replace("{p}", "")]
    if m == "json_failure_rate":
        return [
            _select(
                rule,
                "uniqExact(event_id) AS n, uniqExactIf(event_id, json_ok = 0) AS x",
                checks,
                f"json_required = 1 AND {_RANGE}",
            )
        ]
    if m == "judge_failure_rate":
        return [
            _select(
                rule,
                "count() AS n, countIf(decision = 'failed') AS x",
                f"{db}.decisions FINAL",
                f"scorer = 'judge' AND decision IN ('scored', 'failed') AND {_RANGE}",
            )
        ]
    if m == "latency_p95":
        thr = (
            f"transform({_key_sql(rule)}, "
            "{keys:Array(String)}, {vals:Array(Float64)}, {dflt:Float64})"
        )
        return [
            _select(
                rule,
                f"count() AS n, countIf(latency_ms > {thr}) AS x",
                checks,
                f"latency_ms IS NOT NULL AND {_RANGE}",
            )
        ]
    if m == "incident_rate":
        types = " AND risk_type IN {types:Array(String)}" if extra.get("types") else ""
        by_type = ["risk_type AS d_risk_type"] if "risk_type" in rule.split_by else []
        dims = ", ".join([*_dims(rule), *by_type, ""])
        group = _group(rule, ["d_risk_type"] if by_type else [])
        incidents = (
            f"SELECT {dims}intDiv(toUnixTimestamp(ts), 60) AS b, uniqExact(event_id) AS x "
            f"FROM {db}.incidents WHERE {_RANGE}{types} GROUP BY {group}"
        )
        return [_select(rule, "uniqExact(event_id) AS n", checks, _RANGE), incidents]
    raise AssertionError(m)  # pragma: no cover - drift is read elsewhere


def fetch(
    store: Store, rule: Rule, lo: datetime, hi: datetime, **extra: Any
) -> tuple[Series, Segments]:
    """Per-segment, per-minute sums of ``rule``'s metric over [lo, hi)."""
    params: dict[str, Any] = {"lo": lo, "hi": hi, **extra}
    if rule.metric in ("helpfulness", "judge_mean"):
        params["dimension"] = rule.param("dimension")
    if rule.metric == "incident_rate":
        params["types"] = list(rule.param("risk_types"))
    series: Series = defaultdict(lambda: defaultdict(dict))
    segments: Segments = {}
    plain: list[str] = [str(d) for d in rule.split_by if d != "risk_type"]
    results = [store.query(sql, params) for sql in _sources(rule, store.database, params)]
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


def latency_thresholds(store: Store, rule: Rule, lo: datetime, hi: datetime) -> dict[str, float]:
    """Baseline latency quantile per segment ('' = all traffic) over [lo, hi)."""
    q = float(rule.param("quantile"))
    dims = _dims(rule)
    sel = ", ".join([*dims, ""]) if dims else ""
    group = f" GROUP BY {', '.join(f'd_{d}' for d in rule.split_by)}" if dims else ""
    sql = (
        f"SELECT {sel}quantileExact({q})(latency_ms) AS t, count() AS n "
        f"FROM {store.database}.checks "
        f"WHERE latency_ms IS NOT NULL AND {_RANGE}{group}"
    )
    out: dict[str, float] = {}
    for row in store.query(sql, {"lo": lo, "hi": hi}):
        if int(row["n"]) >= rule.min_sample:
            out[segment_key({d: str(row[f"d_{d}"]) for d in rule.split_by})] = float(row["t"])
    overall = store.query(
        f"SELECT quantileExact({q})(latency_ms) AS t, count() AS n FROM {store.database}.checks "
        f"WHERE latency_ms IS NOT NULL AND {_RANGE}",
        {"lo": lo, "hi": hi},
    )
    if overall and int(overall[0]["n"]) > 0:
        out["*"] = float(overall[0]["t"])
    return out


def judge_pairs(
    store: Store, rule: Rule, lo: datetime, hi: datetime, limit: int = 20000
) -> list[tuple[float, int]]:
    """(judge score, feedback rating) for events that have both, rating != 0."""
    db = store.database
    sql = (
        f"SELECT s.value AS v, f.rating AS r FROM {db}.scores AS s FINAL "
        f"INNER JOIN {db}.feedback AS f FINAL "
        "ON s.event_id = f.event_id WHERE s.scorer = 'judge' AND s.name = {dimension:String} "
        "AND s.ts >= {lo:DateTime64} AND s.ts < {hi:DateTime64} AND f.rating != 0 "
        f"ORDER BY s.ts DESC LIMIT {int(limit)}"
    )
    rows = store.query(sql, {"dimension": rule.param("dimension"), "lo": lo, "hi": hi})
    return [(float(r["v"]), int(r["r"])) for r in rows]


def examples_sql(
    rule: Rule,
    db: str,
    segment: dict[str, str],
    lo: datetime,
    hi: datetime,
    latency_over: float | None = None,
    limit: int = 100,
) -> str:
    """A ready-to-run query listing the failing events behind an alert (literals inlined)."""
    conds = [f"{d} = {{seg_{d}:String}}" for d in segment if d != "risk_type"]
    params: dict[str, Any] = {f"seg_{d}": v for d, v in segment.items()}
    params.update(lo=lo, hi=hi)
    m = rule.metric
    cols = "event_id, ts, route, model_version"
    if m in ("helpfulness", "negative_feedback_rate", "judge_mean"):
        bad = [f"event_id IN (SELECT event_id FROM {db}.feedback FINAL WHERE rating < 0)"]
        if m != "negative_feedback_rate":
            bad.append(
                f"event_id IN (SELECT event_id FROM {db}.scores WHERE scorer = 'judge' "
                f"AND name = '{rule.param('dimension')}' AND value <= 2)"
            )
        if m == "helpfulness":
            bad.append("(" + " OR ".join(f"{c} = 1" for c in rule.param("cheap_checks")) + ")")
        where = "(" + " OR ".join(bad) + ")"
        source = f"{db}.checks"
    elif m == "incident_rate":
        cols = "event_id, ts, route, model_version, risk_type, category, score"
        source = f"{db}.incidents"
        where = "1" if "risk_type" not in segment else "risk_type = {seg_risk_type:String}"
    elif m == "latency_p95":
        cols += ", latency_ms"
        source, where = f"{db}.checks", f"latency_ms > {float(latency_over or 0.0)!r}"
    elif m == "json_failure_rate":
        cols += ", json_error"
        source, where = f"{db}.checks", "json_required = 1 AND json_ok = 0"
    elif m == "judge_failure_rate":
        cols += ", reason"
        source, where = f"{db}.decisions FINAL", "scorer = 'judge' AND decision = 'failed'"
    else:
        return ""
    sql = (
        f"SELECT {cols} FROM {source} WHERE {where} "
        "AND ts >= {lo:DateTime64} AND ts < {hi:DateTime64}"
        + "".join(f" AND {c}" for c in conds)
        + f" ORDER BY ts LIMIT {int(limit)}"
    )
    return render(sql, params)
