"""The drift job's SQL: prompt embeddings by span, the judge scores and prompts that
describe a report, pinned baselines (table ``state``) and the stored drift reports.

A span is always ``[start, end)`` in event time; a ``model_version`` of '' means every
version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.store.base import Store
from monitor.times import parse_ts

# -- prompt embeddings ----------------------------------------------------------------------


def _embeddings(store: Store) -> str:
    return f"{store.database}.embeddings"


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
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows (event_id, model_version, vector) of the span, picked by a
    hash of the event id keyed by ``salt`` (stable for the same rows, spread over the span),
    in hash order."""
    return store.query(
        f"SELECT event_id, model_version, vector FROM {_embeddings(store)} FINAL "
        "WHERE kind = 'prompt' AND embedder = {e:String} "
        "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "AND ({v:String} = '' OR model_version = {v:String}) "
        "ORDER BY sipHash64(event_id, {salt:String}) LIMIT {limit:UInt32}",
        {
            "start": start,
            "end": end,
            "v": model_version,
            "e": embedder,
            "salt": salt,
            "limit": limit,
        },
    )


def span_fingerprint(
    store: Store, start: datetime, end: datetime, model_version: str, embedder: str
) -> tuple[int, str]:
    """(prompt embeddings in the span, XOR of their event ids' hashes as text): the same
    rows give the same pair, cheaply, without reading the vectors."""
    rows = store.query(
        "SELECT count() AS n, toString(groupBitXor(sipHash64(event_id))) AS h "
        f"FROM {_embeddings(store)} FINAL "
        "WHERE kind = 'prompt' AND embedder = {e:String} "
        "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "AND ({v:String} = '' OR model_version = {v:String})",
        {"start": start, "end": end, "v": model_version, "e": embedder},
    )
    return (int(rows[0]["n"]), str(rows[0]["h"])) if rows else (0, "")


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


def prompts(store: Store, start: datetime, end: datetime, ids: list[str]) -> dict[str, str]:
    """Prompt text by event id, for those of ``ids`` in the span (no query for none)."""
    if not ids:
        return {}
    rows = store.query(
        f"SELECT event_id, any(prompt) AS prompt FROM {store.database}.events "
        "WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
        "AND has({ids:Array(String)}, event_id) GROUP BY event_id",
        {"start": start, "end": end, "ids": ids},
    )
    return {r["event_id"]: str(r["prompt"]) for r in rows}


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


def last_report_ts(store: Store) -> datetime | None:
    """Event time of the newest drift report, None when there is none."""
    rows = store.query(f"SELECT max(ts) AS last, count() AS n FROM {store.database}.drift_reports")
    if not rows or int(rows[0]["n"]) == 0:
        return None
    return parse_ts(rows[0]["last"])
