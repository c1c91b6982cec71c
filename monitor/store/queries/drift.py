"""The drift job's SQL: prompt embeddings by span, the judge scores and prompts that
describe a report, pinned baselines (table ``state``) and the stored drift reports.

A span is always ``[start, end)`` in event time, less its ``excluded`` sub-spans where a
query takes them; a ``model_version`` of '' means every version.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.store.base import Store
from monitor.times import parse_ts

# -- prompt embeddings ----------------------------------------------------------------------


def _embeddings(store: Store) -> str:
    return f"{store.database}.embeddings"


Spans = Sequence[tuple[datetime, datetime]]

#: Rows outside every excluded ``[start, end)``; the casts type an empty list.
_NOT_EXCLUDED = (
    "NOT arrayExists((s, e) -> ts >= s AND ts < e, "
    "CAST({xs:Array(DateTime64(3))} AS Array(DateTime64(3, 'UTC'))), "
    "CAST({xe:Array(DateTime64(3))} AS Array(DateTime64(3, 'UTC'))))"
)


def _excluded(spans: Spans) -> dict[str, list[datetime]]:
    return {"xs": [s for s, _ in spans], "xe": [e for _, e in spans]}


def window_embedder(store: Store, start: datetime, end: datetime) -> tuple[str, int] | None:
    """The embedder with the most prompt embeddings in the span, and that count."""
    rows = store.query(
        f"SELECT embedder, count() AS n FROM {_embeddings(store)} WHERE kind = 'prompt' "
        "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "GROUP BY embedder ORDER BY n DESC, embedder LIMIT 1",
        {"start": start, "end": end},
    )
    return (str(rows[0]["embedder"]), int(rows[0]["n"])) if rows else None


def span_embedder(
    store: Store, start: datetime, end: datetime, model_version: str
) -> tuple[str, int] | None:
    """`window_embedder` for one version, counting redelivered rows once (``FINAL``)."""
    rows = store.query(
        f"SELECT embedder, count() AS n FROM {_embeddings(store)} FINAL WHERE kind = 'prompt' "
        "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "AND ({v:String} = '' OR model_version = {v:String}) "
        "GROUP BY embedder ORDER BY n DESC, embedder LIMIT 1",
        {"start": start, "end": end, "v": model_version},
    )
    return (str(rows[0]["embedder"]), int(rows[0]["n"])) if rows else None


def last_prompt_ts(store: Store, model_version: str) -> datetime | None:
    """Event time of the newest prompt embedding (of one version), None when there is none."""
    rows = store.query(
        f"SELECT count() AS n, max(ts) AS last FROM {_embeddings(store)} "
        "WHERE kind = 'prompt' AND ({v:String} = '' OR model_version = {v:String})",
        {"v": model_version},
    )
    if not rows or int(rows[0]["n"]) == 0:
        return None
    return parse_ts(rows[0]["last"])


def prompt_embeddings(
    store: Store,
    start: datetime,
    end: datetime,
    model_version: str,
    embedder: str,
    salt: str,
    limit: int,
    excluded: Spans = (),
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows (event_id, model_version, vector) of the span, picked by a
    hash of the event id keyed by ``salt`` (stable for the same rows, spread over the span),
    in hash order."""
    return store.query(
        f"SELECT event_id, model_version, vector FROM {_embeddings(store)} FINAL "
        "WHERE kind = 'prompt' AND embedder = {e:String} "
        "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        f"AND ({{v:String}} = '' OR model_version = {{v:String}}) AND {_NOT_EXCLUDED} "
        "ORDER BY sipHash64(event_id, {salt:String}) LIMIT {limit:UInt32}",
        {
            "start": start,
            "end": end,
            "v": model_version,
            "e": embedder,
            "salt": salt,
            "limit": limit,
            **_excluded(excluded),
        },
    )


def span_fingerprint(
    store: Store,
    start: datetime,
    end: datetime,
    model_version: str,
    embedder: str,
    excluded: Spans = (),
) -> tuple[int, str, datetime | None]:
    """(prompt embeddings in the span, XOR of their event ids' hashes as text, the first
    one's event time): the same rows give the same triple, cheaply, without the vectors."""
    rows = store.query(
        "SELECT count() AS n, toString(groupBitXor(sipHash64(event_id))) AS h, "
        f"min(ts) AS first FROM {_embeddings(store)} FINAL "
        "WHERE kind = 'prompt' AND embedder = {e:String} "
        "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        f"AND ({{v:String}} = '' OR model_version = {{v:String}}) AND {_NOT_EXCLUDED}",
        {"start": start, "end": end, "v": model_version, "e": embedder, **_excluded(excluded)},
    )
    if not rows or int(rows[0]["n"]) == 0:
        return 0, "", None
    return int(rows[0]["n"]), str(rows[0]["h"]), parse_ts(rows[0]["first"])


# -- what describes a report ------------------------------------------------------------------


def judge_scores(
    store: Store, start: datetime, end: datetime, model_version: str
) -> list[dict[str, Any]]:
    """Judge scores of the span: rows (event_id, name, value), value the mean over judge
    versions."""
    return store.query(
        f"SELECT event_id, name, avg(value) AS value FROM {store.database}.scores FINAL "
        "WHERE scorer = 'judge' AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "AND ({v:String} = '' OR model_version = {v:String}) GROUP BY event_id, name",
        {"start": start, "end": end, "v": model_version},
    )


def prompts(
    store: Store, start: datetime, end: datetime, ids: list[str], chars: int = 10_000
) -> dict[str, str]:
    """Prompt text (its first ``chars`` characters) by event id, for those of ``ids`` in
    the span (no query for none)."""
    if not ids:
        return {}
    rows = store.query(
        "SELECT event_id, substringUTF8(any(prompt), 1, {chars:UInt32}) AS prompt "
        f"FROM {store.database}.events "
        "WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "AND has({ids:Array(String)}, event_id) GROUP BY event_id",
        {"start": start, "end": end, "ids": ids, "chars": chars},
    )
    return {r["event_id"]: str(r["prompt"]) for r in rows}


def refused(store: Store, start: datetime, end: datetime) -> set[str]:
    """Event ids of the span whose answer the refusal check flagged (few, on most days)."""
    rows = store.query(
        f"SELECT DISTINCT event_id FROM {store.database}.checks "
        "WHERE refusal = 1 AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}",
        {"start": start, "end": end},
    )
    return {str(r["event_id"]) for r in rows}


def flagged_windows(
    store: Store, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """``[window_start, ts)`` of every report (any scope) that flagged drift or a new topic
    and whose window overlaps ``[start, end)``, by window start."""
    rows = store.query(
        f"SELECT window_start, ts FROM {store.database}.drift_reports FINAL "
        "WHERE (drifted = 1 OR new_topic = 1) AND ts > {start:DateTime64(3)} "
        "AND window_start < {end:DateTime64(3)} ORDER BY window_start, ts",
        {"start": start, "end": end},
    )
    return [(parse_ts(r["window_start"]), parse_ts(r["ts"])) for r in rows]


# -- pinned baselines and stored reports ------------------------------------------------------


def state_under(store: Store, key: str) -> list[dict[str, Any]]:
    """Rows (key, value) of table ``state`` for ``key`` and every ``key:<suffix>``."""
    return store.query(
        f"SELECT key, value FROM {store.database}.state FINAL "
        "WHERE key = {k:String} OR startsWith(key, {prefix:String})",
        {"k": key, "prefix": key + ":"},
    )


def drift_reports(
    store: Store, since: datetime, model_version: str | None, limit: int
) -> list[dict[str, Any]]:
    """Stored drift reports from ``since``, newest first (None: every scope, '': pooled)."""
    return store.query(
        f"SELECT * FROM {store.database}.drift_reports FINAL "
        "WHERE ts >= {since:DateTime64(3)} AND ({any:UInt8} = 1 OR model_version = {v:String}) "
        "ORDER BY ts DESC, model_version LIMIT {limit:UInt32}",
        {
            "since": since,
            "any": 1 if model_version is None else 0,
            "v": model_version or "",
            "limit": limit,
        },
    )


def report_clusters(store: Store, ts: datetime, model_version: str) -> str:
    """``top_clusters`` (JSON text) of the report of one scope at ``ts``; '' when none."""
    rows = store.query(
        f"SELECT top_clusters FROM {store.database}.drift_reports FINAL "
        "WHERE model_version = {v:String} AND ts = {ts:DateTime64(3)} LIMIT 1",
        {"v": model_version, "ts": ts},
    )
    return str(rows[0]["top_clusters"]) if rows else ""


def last_report_ts(store: Store) -> datetime | None:
    """Event time of the newest drift report, None when there is none."""
    rows = store.query(f"SELECT max(ts) AS last, count() AS n FROM {store.database}.drift_reports")
    if not rows or int(rows[0]["n"]) == 0:
        return None
    return parse_ts(rows[0]["last"])
