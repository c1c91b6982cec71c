"""What failure capture reads (the evidence each rule kind looks at, in a window of event
time) and what `vigil failures` and the export read back from ``failures``.

Every function is one batched query: a capture run or an export issues a handful of
queries whatever the number of events, never one per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.store.base import Store
from monitor.times import parse_optional_ts

# The window of a capture run: both ends included, so the final firing of a replay (at
# the watermark, the time of the last event) still sees that event.
_WINDOW = "ts >= {lo:DateTime64} AND ts <= {hi:DateTime64}"
_KEYS = "event_id, ts, route, model, model_version"


def check_failures(store: Store, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
    """``checks`` rows in the window where any capture-worthy check failed."""
    sql = (
        f"SELECT {_KEYS}, empty, truncated, refusal, json_required, json_ok, json_error, "
        f"pii_kinds, jailbreak_kinds FROM {store.database}.checks FINAL WHERE {_WINDOW} AND "
        "(length(pii_kinds) > 0 OR (json_required = 1 AND json_ok = 0) OR empty = 1 "
        "OR truncated = 1 OR (length(jailbreak_kinds) > 0 AND refusal = 0)) "
        "ORDER BY event_id LIMIT 1 BY event_id"
    )
    return store.query(sql, {"lo": lo, "hi": hi})


def judge_failures(
    store: Store, dimension: str, threshold: float, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Events whose judge verdict on ``dimension`` is at or below ``threshold``: the
    lowest of the ``scores`` rows (scorer 'judge') and the ``judgments`` maps."""
    db = store.database
    sql = (
        f"SELECT event_id, any(ts) AS ts, any(route) AS route, any(model) AS model, "
        "any(model_version) AS model_version, min(v) AS value FROM ("
        f"SELECT {_KEYS}, value AS v FROM {db}.scores FINAL "
        f"WHERE scorer = 'judge' AND name = {{dim:String}} AND {_WINDOW} "
        f"UNION ALL SELECT {_KEYS}, scores[{{dim:String}}] AS v FROM {db}.judgments FINAL "
        f"WHERE mapContains(scores, {{dim:String}}) AND {_WINDOW}"
        ") GROUP BY event_id HAVING value <= {thr:Float64} ORDER BY event_id"
    )
    return store.query(sql, {"dim": dimension, "thr": float(threshold), "lo": lo, "hi": hi})


def score_failures(
    store: Store, scorer: str, name: str, threshold: float, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Events whose ``scorer``/``name`` score is at or over ``threshold`` (the highest)."""
    sql = (
        "SELECT event_id, any(ts) AS ts, any(route) AS route, any(model) AS model, "
        f"any(model_version) AS model_version, max(v) AS value FROM (SELECT {_KEYS}, "
        f"value AS v FROM {store.database}.scores FINAL "
        f"WHERE scorer = {{scorer:String}} AND name = {{name:String}} AND {_WINDOW}) "
        "GROUP BY event_id HAVING value >= {thr:Float64} ORDER BY event_id"
    )
    params = {"scorer": scorer, "name": name, "thr": float(threshold), "lo": lo, "hi": hi}
    return store.query(sql, params)


def feedback_failures(
    store: Store, max_rating: int, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """Events with feedback rated at or below ``max_rating`` whose feedback time is in
    the window (inline feedback has the event's time; late feedback its own)."""
    db = store.database
    bad = (
        f"SELECT event_id, rating FROM {db}.feedback FINAL "
        f"WHERE rating <= {{max:Int64}} AND {_WINDOW}"
    )
    sql = (
        "SELECT e.event_id AS event_id, e.ts AS ts, e.route AS route, e.model AS model, "
        "e.model_version AS model_version, f.rating AS rating "
        f"FROM ({bad}) AS f INNER JOIN (SELECT {_KEYS} FROM {db}.events FINAL "
        "WHERE event_id IN (SELECT event_id FROM (" + bad + "))) AS e "
        "ON e.event_id = f.event_id ORDER BY event_id"
    )
    return store.query(sql, {"max": int(max_rating), "lo": lo, "hi": hi})


def firing_alerts(store: Store, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
    """Alerts firing at ``hi`` or that started firing in the window, with the example
    query stored at their firing transition (``alert_id``, ``rule``, ``query``)."""
    sql = (
        "SELECT alert_id, rule, query FROM ("
        "SELECT alert_id, argMax(rule, ts) AS rule, argMax(state, ts) AS last_state, "
        "argMaxIf(query, ts, state = 'firing') AS query, "
        "maxIf(ts, state = 'firing') AS fired "
        f"FROM {store.database}.alerts FINAL WHERE ts <= {{hi:DateTime64}} "
        "GROUP BY alert_id) WHERE query != '' "
        "AND (last_state = 'firing' OR fired >= {lo:DateTime64}) ORDER BY alert_id"
    )
    return store.query(sql, {"lo": lo, "hi": hi})


def run_examples(store: Store, query: str) -> list[dict[str, Any]]:
    """An alert's stored example query, as it was written (literals inlined)."""
    return store.query(query)


def event_keys(store: Store, event_ids: Sequence[str]) -> list[dict[str, Any]]:
    """``event_id, ts, route, model, model_version`` of each stored event of ``event_ids``."""
    if not event_ids:
        return []
    sql = (
        f"SELECT {_KEYS} FROM {store.database}.events FINAL "
        "WHERE event_id IN {ids:Array(String)} ORDER BY event_id"
    )
    return store.query(sql, {"ids": sorted(set(event_ids))})


def stored_alert_ids(store: Store, reason: str, event_ids: Sequence[str]) -> dict[str, str]:
    """event_id -> the ``alert_id`` already stored under ``reason`` (comma-separated)."""
    if not event_ids:
        return {}
    sql = (
        f"SELECT event_id, alert_id FROM {store.database}.failures FINAL "
        "WHERE reason = {reason:String} AND event_id IN {ids:Array(String)}"
    )
    rows = store.query(sql, {"reason": reason, "ids": sorted(set(event_ids))})
    return {row["event_id"]: row["alert_id"] for row in rows}


def _conditions(
    since: datetime | None,
    until: datetime | None,
    reasons: Sequence[str] | None,
    model_version: str | None = None,
) -> tuple[str, dict[str, Any]]:
    conds, params = ["1"], dict[str, Any]()
    if since is not None:
        conds.append("ts >= {since:DateTime64}")
        params["since"] = since
    if until is not None:
        conds.append("ts < {until:DateTime64}")
        params["until"] = until
    if reasons:
        conds.append("reason IN {reasons:Array(String)}")
        params["reasons"] = list(reasons)
    if model_version is not None:
        conds.append("model_version = {mv:String}")
        params["mv"] = model_version
    return " AND ".join(conds), params


def list_failures(
    store: Store,
    *,
    reasons: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    model_version: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Captured failures, newest first (every column but ``captured_at``)."""
    where, params = _conditions(since, until, reasons, model_version)
    sql = (
        "SELECT event_id, ts, route, model, model_version, reason, kind, detail, score, "
        f"alert_id, topic, rule_version FROM {store.database}.failures FINAL WHERE {where} "
        "ORDER BY ts DESC, event_id, reason" + (f" LIMIT {int(limit)}" if limit else "")
    )
    return store.query(sql, params)


def latest_failure_ts(store: Store) -> datetime | None:
    """Event time of the newest captured failure (None when there is none)."""
    rows = store.query(f"SELECT max(ts) AS ts, count() AS n FROM {store.database}.failures")
    return parse_optional_ts(rows[0]["ts"]) if rows and rows[0]["n"] else None


class FailureWindow:
    """The failures an export reads (``since <= ts < until``, some reasons) and the
    evidence about their events, each in one query joined on the failures server-side."""

    def __init__(
        self,
        store: Store,
        since: datetime | None,
        until: datetime | None,
        reasons: Sequence[str] | None,
    ) -> None:
        self.store = store
        self.where, self.params = _conditions(since, until, reasons)
        db = store.database
        self._ids = f"event_id IN (SELECT event_id FROM {db}.failures FINAL WHERE {self.where})"
        # Failures carry their event's time: the same bounds prune the event-time tables.
        self._ts = _conditions(since, until, None)[0]

    def _query(self, sql: str) -> list[dict[str, Any]]:
        return self.store.query(sql, self.params)

    def failures(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT event_id, ts, reason, kind, detail, score, alert_id, topic, model_version "
            f"FROM {self.store.database}.failures FINAL WHERE {self.where} "
            "ORDER BY ts, event_id, reason"
        )

    def events(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT event_id, ts, route, model, model_version, prompt, request, response, "
            f"finish_reason FROM {self.store.database}.events FINAL "
            f"WHERE {self._ids} AND {self._ts}"
        )

    def judgments(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT event_id, judge_version, rubric, rubric_version, scores, reasons "
            f"FROM {self.store.database}.judgments FINAL WHERE {self._ids} AND {self._ts} "
            "ORDER BY event_id, judge_version"
        )

    def scores(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT event_id, scorer, scorer_version, name, value "
            f"FROM {self.store.database}.scores FINAL WHERE {self._ids} AND {self._ts} "
            "ORDER BY event_id, scorer, scorer_version, name"
        )

    def feedback(self) -> list[dict[str, Any]]:
        # Late feedback has its own time: no time bounds here.
        return self._query(
            f"SELECT event_id, rating, comment FROM {self.store.database}.feedback FINAL "
            f"WHERE {self._ids}"
        )
