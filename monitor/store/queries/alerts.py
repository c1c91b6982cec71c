"""The alerts' SQL: per-minute sums for the sequential tests, baselines, the drift reports
the drift rule reads and the ``alerts`` table itself (the failing-example queries stored
with each alert are in `monitor.store.queries.alert_examples`).

Per-minute queries cover ``[lo, hi)`` of *event* time and return the split dimensions
(``d_<name>``), the minute ``b`` (Unix minutes) and named sums (``n``, ``x``, ``s``,
``ss``, after a component prefix). Counts use ``uniqExact(event_id)`` or ``FINAL`` so rows
redelivered into the ReplacingMergeTrees do not count twice before they merge. Which
metric asks for which sums, split by which dimensions, is decided by `monitor.alerts`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from monitor.errors import StoreError
from monitor.store.base import Store
from monitor.times import parse_optional_ts

Result = list[dict[str, Any]]

_RANGE = "ts >= {lo:DateTime64} AND ts < {hi:DateTime64}"
#: Split dimensions and boolean check columns are written into the SQL text as identifiers;
#: rules allow-list them at load (`monitor.alerts.rules`), and this refuses anything else.
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise StoreError(f"not a column name: {name!r}")
    return name


def _span(lo: datetime, hi: datetime) -> dict[str, Any]:
    return {"lo": lo, "hi": hi}


# -- per-minute sums ------------------------------------------------------------------------


def _dim_columns(dims: Sequence[str], alias: str = "") -> list[str]:
    prefix = f"{alias}." if alias else ""
    return [f"toString({prefix}{_ident(d)}) AS d_{d}" for d in dims]


def _group(dims: Sequence[str], extra: Sequence[str] = ()) -> str:
    return ", ".join([f"d_{_ident(d)}" for d in dims] + list(extra) + ["b"])


def _per_minute(dims: Sequence[str], sums: str, source: str, where: str) -> str:
    columns = ", ".join([*_dim_columns(dims), ""]) if dims else ""
    return (
        f"SELECT {columns}intDiv(toUnixTimestamp(ts), 60) AS b, {sums} FROM {source} "
        f"WHERE {where} GROUP BY {_group(dims)}"
    )


def feedback_minutes(
    store: Store, dims: Sequence[str], lo: datetime, hi: datetime, prefix: str = ""
) -> Result:
    """Rated events (``n``) and thumbs-down (``x``), by the minute of the *event*: feedback
    arriving late still counts towards the minute it rates."""
    db = store.database
    sql = (
        f"SELECT {', '.join([*_dim_columns(dims, 'c'), ''])}"
        "intDiv(toUnixTimestamp(c.ts), 60) AS b, "
        f"uniqExact(f.event_id) AS {prefix}n, uniqExactIf(f.event_id, f.rating < 0) AS {prefix}x "
        f"FROM {db}.feedback AS f FINAL INNER JOIN "
        "(SELECT DISTINCT event_id, ts, route, model_version "
        f"FROM {db}.checks WHERE {_RANGE}) AS c "
        f"ON f.event_id = c.event_id WHERE f.ts < {{hi:DateTime64}} GROUP BY {_group(dims)}"
    )
    return store.query(sql, _span(lo, hi))


def judge_minutes(
    store: Store, dims: Sequence[str], lo: datetime, hi: datetime, dimension: str, prefix: str = ""
) -> Result:
    """Count, sum and sum of squares of one judge dimension, for rated (not cached) events."""
    db = store.database
    sql = _per_minute(
        dims,
        f"count() AS {prefix}n, sum(value) AS {prefix}s, sum(value * value) AS {prefix}ss",
        f"{db}.scores FINAL",
        f"scorer = 'judge' AND name = {{dimension:String}} AND {_RANGE} AND event_id IN "
        f"(SELECT event_id FROM {db}.decisions WHERE scorer = 'judge' "
        f"AND reason LIKE 'rate:%' AND {_RANGE})",
    )
    return store.query(sql, {**_span(lo, hi), "dimension": dimension})


def cheap_failure_sql(checks: Sequence[str], excuse_flagged_refusals: bool) -> str:
    """The SQL condition "this event failed one of the named boolean checks" over table
    ``checks``. With ``excuse_flagged_refusals``, a refusal of a prompt the every-event
    checks flagged as an attack (``jailbreak_kinds`` not empty) is not a failure: refusing
    it is the right answer, and a surge of such requests is drift, not a quality drop."""
    parts = []
    for c in checks:
        name = _ident(c)
        if name == "refusal" and excuse_flagged_refusals:
            parts.append("(refusal = 1 AND empty(jailbreak_kinds))")
        else:
            parts.append(f"{name} = 1")
    return "(" + (" OR ".join(parts) or "0") + ")"


def cheap_check_minutes(
    store: Store,
    dims: Sequence[str],
    lo: datetime,
    hi: datetime,
    checks: Sequence[str],
    excuse_flagged_refusals: bool = True,
) -> Result:
    """Events (``cn``) and events failing any of the named boolean checks (``cx``), see
    `cheap_failure_sql`."""
    failed = cheap_failure_sql(checks, excuse_flagged_refusals)
    sql = _per_minute(
        dims,
        f"uniqExact(event_id) AS cn, uniqExactIf(event_id, {failed}) AS cx",
        f"{store.database}.checks",
        _RANGE,
    )
    return store.query(sql, _span(lo, hi))


def json_failure_minutes(store: Store, dims: Sequence[str], lo: datetime, hi: datetime) -> Result:
    """JSON-required responses (``n``) and those that were not valid JSON (``x``)."""
    sql = _per_minute(
        dims,
        "uniqExact(event_id) AS n, uniqExactIf(event_id, json_ok = 0) AS x",
        f"{store.database}.checks",
        f"json_required = 1 AND {_RANGE}",
    )
    return store.query(sql, _span(lo, hi))


def judge_failure_minutes(store: Store, dims: Sequence[str], lo: datetime, hi: datetime) -> Result:
    """Finished judge decisions (``n``) and failed ones (``x``)."""
    sql = _per_minute(
        dims,
        "count() AS n, countIf(decision = 'failed') AS x",
        f"{store.database}.decisions FINAL",
        f"scorer = 'judge' AND decision IN ('scored', 'failed') AND {_RANGE}",
    )
    return store.query(sql, _span(lo, hi))


def _segment_key_sql(dims: Sequence[str]) -> str:
    # The alerts' segment key ("d1=v1,d2=v2", as `monitor.alerts.metrics.segment_key`
    # writes it), computed by ClickHouse: the separator belongs inside the literal.
    if not dims:
        return "''"
    pieces: list[str] = []
    for i, d in enumerate(dims):
        pieces += [f"'{',' if i else ''}{_ident(d)}='", f"toString({d})"]
    return "concat(" + ", ".join(pieces) + ")"


class Limits(NamedTuple):
    """Per-segment limits: ``vals[i]`` for segment key ``keys[i]``, ``default`` for any
    other segment (they travel as parallel arrays)."""

    keys: list[str]
    vals: list[float]
    default: float


def over_limit_minutes(
    store: Store,
    dims: Sequence[str],
    lo: datetime,
    hi: datetime,
    limits: Limits,
    value: str,
    source: str,
    where: str,
) -> Result:
    """Rows (``n``) of ``source`` matching ``where`` and those whose ``value`` is above
    their segment's limit (``x``). uniqExact, not count(): a redelivered or replayed row
    must not count twice."""
    limit = (
        f"transform({_segment_key_sql(dims)}, "
        "{keys:Array(String)}, {vals:Array(Float64)}, {dflt:Float64})"
    )
    sql = _per_minute(
        dims,
        f"uniqExact(event_id) AS n, uniqExactIf(event_id, {value} > {limit}) AS x",
        f"{store.database}.{source}",
        f"{where} AND {_RANGE}",
    )
    params = {"keys": limits.keys, "vals": limits.vals, "dflt": limits.default}
    return store.query(sql, {**_span(lo, hi), **params})


def slow_request_minutes(
    store: Store, dims: Sequence[str], lo: datetime, hi: datetime, limits: Limits
) -> Result:
    """Requests (``n``) and those slower than their segment's limit (``x``)."""
    return over_limit_minutes(
        store, dims, lo, hi, limits, "latency_ms", "checks", "latency_ms IS NOT NULL"
    )


def event_minutes(
    store: Store, dims: Sequence[str], lo: datetime, hi: datetime, prefix: str = ""
) -> Result:
    """Events (``n``) per segment and minute."""
    sql = _per_minute(dims, f"uniqExact(event_id) AS {prefix}n", f"{store.database}.checks", _RANGE)
    return store.query(sql, _span(lo, hi))


def incident_minutes(
    store: Store,
    dims: Sequence[str],
    lo: datetime,
    hi: datetime,
    types: list[str],
    by_type: bool,
) -> Result:
    """Events with an incident (``x``), of ``types`` only when given, also split by risk
    type (``d_risk_type``) when ``by_type``."""
    only = " AND risk_type IN {types:Array(String)}" if types else ""
    type_column = ["risk_type AS d_risk_type"] if by_type else []
    columns = ", ".join([*_dim_columns(dims), *type_column, ""])
    group = _group(dims, ["d_risk_type"] if by_type else [])
    sql = (
        f"SELECT {columns}intDiv(toUnixTimestamp(ts), 60) AS b, uniqExact(event_id) AS x "
        f"FROM {store.database}.incidents WHERE {_RANGE}{only} GROUP BY {group}"
    )
    return store.query(sql, {**_span(lo, hi), "types": types})


# -- baselines ------------------------------------------------------------------------------


def _quantiles(
    store: Store,
    dims: Sequence[str],
    quantile: float,
    value: str,
    source: str,
    where: str,
    lo: datetime,
    hi: datetime,
) -> Result:
    columns = ", ".join([*_dim_columns(dims), ""]) if dims else ""
    group = f" GROUP BY {', '.join(f'd_{_ident(d)}' for d in dims)}" if dims else ""
    sql = (
        f"SELECT {columns}quantileExact({float(quantile)!r})({value}) AS t, "
        f"uniqExact(event_id) AS n FROM {store.database}.{source} "
        f"WHERE {where} AND {_RANGE}{group}"
    )
    return store.query(sql, _span(lo, hi))


def latency_quantiles(
    store: Store, dims: Sequence[str], quantile: float, lo: datetime, hi: datetime
) -> Result:
    """The latency quantile ``t`` and request count ``n`` per segment over [lo, hi); one row
    for all traffic when ``dims`` is empty."""
    return _quantiles(
        store, dims, quantile, "latency_ms", "checks", "latency_ms IS NOT NULL", lo, hi
    )


def judge_feedback_pairs(
    store: Store, dimension: str, lo: datetime, hi: datetime, limit: int = 20000
) -> list[tuple[float, int]]:
    """(judge score, feedback rating) of the newest events that have both, rating != 0."""
    db = store.database
    sql = (
        f"SELECT s.value AS v, f.rating AS r FROM {db}.scores AS s FINAL "
        f"INNER JOIN {db}.feedback AS f FINAL "
        "ON s.event_id = f.event_id WHERE s.scorer = 'judge' AND s.name = {dimension:String} "
        "AND s.ts >= {lo:DateTime64} AND s.ts < {hi:DateTime64} AND f.rating != 0 "
        f"ORDER BY s.ts DESC LIMIT {int(limit)}"
    )
    rows = store.query(sql, {"dimension": dimension, **_span(lo, hi)})
    return [(float(r["v"]), int(r["r"])) for r in rows]


def first_check_ts(store: Store) -> datetime | None:
    """Event time of the first stored event (the start of the stream), None when empty."""
    got = store.query(f"SELECT count() AS n, min(ts) AS t FROM {store.database}.checks")
    if got and int(got[0]["n"]) > 0:
        return parse_optional_ts(got[0]["t"])
    return None


def pinned_baselines(store: Store) -> dict[str, str]:
    """The non-empty ``alerts.baseline`` and ``drift.baseline`` values of table ``state``."""
    rows = store.query(
        f"SELECT key, argMax(value, updated_at) AS v FROM {store.database}.state "
        "WHERE key IN ('alerts.baseline', 'drift.baseline') GROUP BY key"
    )
    return {row["key"]: row["v"] for row in rows if row["v"]}


# -- drift reports --------------------------------------------------------------------------


def recent_drift_reports(
    store: Store, as_of: datetime, oldest: datetime, *, per_version: bool
) -> Result:
    """Drift reports in (oldest, as_of], oldest first: the per-version ones, or the pooled
    one (model_version ''). None yet (no drift job has run, or an old store lacks the
    table) reads as no reports."""
    try:
        return store.query(
            "SELECT model_version, ts, drifted, new_topic, reasons, psi, new_topic_rate, "
            f"new_topic_base_rate, n_window FROM {store.database}.drift_reports FINAL "
            "WHERE ts <= {as_of:DateTime64} AND ts > {oldest:DateTime64} AND "
            + ("model_version != ''" if per_version else "model_version = ''")
            + " ORDER BY ts",
            {"as_of": as_of, "oldest": oldest},
        )
    except StoreError as exc:
        if "drift_reports" in str(exc) and "exist" in str(exc).lower():
            return []
        raise


# -- the alerts table -----------------------------------------------------------------------

_COLUMNS = (
    "alert_id, rule, metric, severity, segment, segment_key, state, previous, reason, ts, onset, "
    "fired_at, resolved_at, value, baseline, effect, statistic, threshold, n, confidence, message, "
    "query, command, details, notified"
)


def latest_alert_states(store: Store, as_of: datetime) -> Result:
    """The latest transition at or before ``as_of`` of every (rule, segment_key)."""
    return store.query(
        "SELECT rule, segment_key, state, ts, onset, fired_at, resolved_at, breaches "
        f"FROM {store.database}.alerts FINAL WHERE ts <= {{as_of:DateTime64}} "
        "ORDER BY ts DESC LIMIT 1 BY rule, segment_key",
        {"as_of": as_of},
    )


#: ``alerts.notified``: what became of a transition's notice. A paging transition is
#: stored QUEUED before anything is sent (the outbox, `monitor.alerts.outbox`), then SENT
#: or GAVE_UP; NONE is a transition that does not page (pending, inactive).
NOTICE_NONE, NOTICE_SENT, NOTICE_QUEUED, NOTICE_GAVE_UP = 0, 1, 2, 3


def notice_status(
    store: Store, rule: str, segment_key: str, state: str, ts: datetime | None
) -> int:
    """The latest ``notified`` of this very transition (NOTICE_NONE when never stored): a
    replay or restart that steps into a stored transition keeps its notice's fate."""
    got = store.query(
        f"SELECT argMax(notified, created_at) AS n, count() AS c FROM {store.database}.alerts "
        "WHERE rule = {rule:String} "
        "AND segment_key = {key:String} AND state = {state:String} AND ts = {ts:DateTime64}",
        {"rule": rule, "key": segment_key, "state": state, "ts": ts},
    )
    return int(got[0]["n"] or 0) if got and int(got[0]["c"] or 0) else NOTICE_NONE


def queued_notices(store: Store) -> Result:
    """Every stored transition whose notice is still queued (a process stopped before its
    outbox delivered it), oldest first, with every column (to store it again as sent)."""
    return store.query(
        f"SELECT * FROM {store.database}.alerts FINAL "
        f"WHERE notified = {NOTICE_QUEUED} ORDER BY created_at"
    )


def alert_episodes(store: Store, states: Sequence[str]) -> Result:
    """Every alert episode (alert_id) in its latest transition among ``states``, newest first."""
    return store.query(
        f"SELECT {_COLUMNS} FROM {store.database}.alerts FINAL "
        "WHERE state IN {states:Array(String)} ORDER BY ts DESC LIMIT 1 BY alert_id",
        {"states": list(states)},
    )


def alert_by_id(store: Store, alert_id: str) -> Result:
    """The latest transition of one alert episode (no rows when there is none)."""
    return store.query(
        f"SELECT {_COLUMNS} FROM {store.database}.alerts FINAL WHERE alert_id = {{id:String}} "
        "ORDER BY ts DESC LIMIT 1",
        {"id": alert_id},
    )
