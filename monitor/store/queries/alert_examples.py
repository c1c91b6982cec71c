"""The failing-example queries: built when an alert is raised and stored with it (column
``query``), ready to run as they are (`vigil alerts --examples ID`), and read back.

Values are inlined as quoted literals (`monitor.store.base.render`); times as
``parseDateTime64BestEffort`` of a `datetime`, never as ISO text compared with a
DateTime64 column, which ClickHouse refuses to convert ('...T11:10:00.000Z').
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.store.base import Store, render
from monitor.store.queries.alerts import _ident as ident
from monitor.store.queries.alerts import cheap_failure_sql


def alert_examples_query(store: Store, alert_id: str) -> str | None:
    """The examples query of one alert episode: the one stored when it fired (its
    evidence), else its latest non-empty one; None when there is no such alert.

    Not the latest row's: a segment that went quiet resolves on an outcome without
    traffic, which has no query, and the events that raised the alert are what to show.
    """
    rows = store.query(
        f"SELECT query FROM {store.database}.alerts FINAL WHERE alert_id = {{id:String}} "
        "ORDER BY query != '' DESC, state = 'firing' DESC, ts DESC LIMIT 1",
        {"id": alert_id},
    )
    return str(rows[0]["query"]) if rows else None


def examples_query(
    db: str,
    metric: str,
    segment: dict[str, str],
    lo: datetime,
    hi: datetime,
    *,
    judge_dimension: str = "",
    cheap_checks: Sequence[str] = (),
    excuse_flagged_refusals: bool = False,
    latency_over: float | None = None,
    limit: int = 100,
) -> str:
    """A ready-to-run query listing the failing events behind an alert of ``metric`` in
    ``segment`` (literals inlined); '' for a metric without one."""
    conds = [f"{ident(d)} = {{seg_{d}:String}}" for d in segment if d != "risk_type"]
    params: dict[str, Any] = {f"seg_{ident(d)}": v for d, v in segment.items()}
    params.update(lo=lo, hi=hi, judge_dimension=judge_dimension)
    m = metric
    cols = "event_id, ts, route, model_version"
    if m in ("helpfulness", "negative_feedback_rate", "judge_mean"):
        bad = [f"event_id IN (SELECT event_id FROM {db}.feedback FINAL WHERE rating < 0)"]
        if m != "negative_feedback_rate":
            bad.append(
                f"event_id IN (SELECT event_id FROM {db}.scores WHERE scorer = 'judge' "
                "AND name = {judge_dimension:String} AND value <= 2)"
            )
        if m == "helpfulness":
            bad.append(cheap_failure_sql(cheap_checks, excuse_flagged_refusals))
        where = "(" + " OR ".join(bad) + ")"
        source = f"{db}.checks"
    elif m == "incident_rate":
        cols = "event_id, ts, route, model_version, risk_type, category, score"
        source = f"{db}.incidents"
        where = "1" if "risk_type" not in segment else "risk_type = {seg_risk_type:String}"
    elif m == "latency_p95":
        cols += ", latency_ms"
        source, where = f"{db}.checks", f"latency_ms > {float(latency_over or 0.0)!r}"
    elif m == "toxicity_score":
        cols += ", value AS toxicity"
        source = f"{db}.scores"
        where = (
            f"scorer = 'toxicity' AND name = 'toxicity' AND value > {float(latency_over or 0.0)!r}"
        )
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


def drift_examples_query(db: str, model_version: str, as_of: datetime) -> str:
    """A ready-to-run query listing the flagged drift reports of one scope up to ``as_of``."""
    return render(
        f"SELECT ts, model_version, reasons, top_clusters FROM {db}.drift_reports FINAL "
        "WHERE model_version = {model_version:String} AND (drifted = 1 OR new_topic = 1) "
        "AND ts <= {as_of:DateTime64} ORDER BY ts DESC LIMIT 20",
        {"model_version": model_version, "as_of": as_of},
    )
