"""Judge-human agreement: the judge's verdicts on eval-set items' source events, and the
``judge_agreement`` table (what `vigil evalset agreement` measured, and what the
helpfulness alert reads to weigh the judge)."""

from __future__ import annotations

import math
from typing import Any

from monitor.store.base import Store


def latest_judgments(store: Store, event_ids: list[str]) -> list[dict[str, Any]]:
    """The latest judgment with scores per event among ``event_ids`` (by ``created_at``,
    whatever the judge version): event_id, judge_version, scores (dimension -> 1-5) and
    created_at."""
    if not event_ids:
        return []
    # Renamed in the subquery: an alias equal to a column name would shadow it.
    sql = (
        "SELECT event_id, argMax(jv, at) AS judge_version, argMax(sc, at) AS scores, "
        "max(at) AS created_at FROM (SELECT event_id, judge_version AS jv, scores AS sc, "
        f"created_at AS at FROM {store.database}.judgments FINAL "
        "WHERE has({ids:Array(String)}, event_id) AND length(mapKeys(scores)) > 0) "
        "GROUP BY event_id"
    )
    return store.query(sql, {"ids": event_ids})


def agreement_rows(store: Store, evalset: str | None = None) -> list[dict[str, Any]]:
    """Every stored measurement (of one eval set, if named), oldest first; an undefined
    kappa or Spearman reads back as NaN."""
    where = "WHERE evalset = {evalset:String}" if evalset is not None else ""
    sql = (
        "SELECT evalset, version, judge_version, dimension, n, kappa, kappa_kind, kappa_low, "
        f"kappa_high, spearman, measured_at FROM {store.database}.judge_agreement FINAL "
        f"{where} ORDER BY measured_at, dimension, judge_version"
    )
    rows = store.query(sql, {"evalset": evalset} if evalset is not None else None)
    for row in rows:
        for key in ("kappa", "kappa_low", "kappa_high", "spearman"):
            # NaN leaves the store as JSON null.
            row[key] = math.nan if row[key] is None else float(row[key])
    return rows


def latest_agreement(
    store: Store, dimension: str, judge_version: str | None = None
) -> tuple[float, int] | None:
    """(kappa, n) of the newest measurement on ``dimension`` (of that judge version, if
    named) whose kappa is defined; None when humans have not labelled enough to measure.

    The 1-5 dimensions carry quadratic-weighted kappa; ``verdict`` the plain pass/fail one.
    """
    where = "dimension = {dimension:String} AND NOT isNaN(kappa) AND n > 0"
    params: dict[str, Any] = {"dimension": dimension}
    if judge_version is not None:
        where += " AND judge_version = {judge_version:String}"
        params["judge_version"] = judge_version
    sql = (
        f"SELECT kappa, n FROM {store.database}.judge_agreement FINAL WHERE {where} "
        "ORDER BY measured_at DESC LIMIT 1"
    )
    rows = store.query(sql, params)
    if not rows:
        return None
    return float(rows[0]["kappa"]), int(rows[0]["n"])


def store_agreement(store: Store, rows: list[dict[str, Any]]) -> None:
    """Insert measurements (``judge_agreement`` columns); NaN is sent as the text "nan",
    which ClickHouse reads as NaN (a JSON NaN would arrive as null, i.e. 0)."""
    fixed = [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows
    ]
    if fixed:
        store.insert("judge_agreement", fixed)
