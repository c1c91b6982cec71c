"""What the re-queue of undone scorer work reads (`monitor.pipeline.requeue`).

One query per scorer and round: the stored events whose latest decision for that scorer
is ``pending`` (when asked) or ``failed`` with a reason matching ``retryable``, ingested
since ``since``, oldest first, with the checks that failed (the job carries them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.store.base import Store

_EVENT_COLUMNS = (
    "e.event_id AS event_id, e.ts AS ts, e.app AS app, e.route AS route, e.model AS model, "
    "e.model_version AS model_version, e.request AS request, e.response AS response, "
    "e.finish_reason AS finish_reason, e.latency_ms AS latency_ms, "
    "e.prompt_tokens AS prompt_tokens, e.completion_tokens AS completion_tokens, "
    "e.feedback_rating AS feedback_rating, e.shadow_response AS shadow_response, "
    "e.shadow_model AS shadow_model, e.metadata AS metadata, c.failed AS failed"
)


def undone_jobs(
    store: Store,
    scorer: str,
    *,
    pending: bool,
    retryable: str,
    since: datetime,
    before: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """The events (as stored) of ``scorer``'s undone decisions, ingested in
    [``since``, ``before``), at most ``limit``."""
    db = store.database
    states = "(d.decision = 'failed' AND match(d.reason, {retryable:String}))"
    if pending:
        states = f"(d.decision = 'pending' OR {states})"
    sql = (
        f"SELECT {_EVENT_COLUMNS} FROM {db}.events AS e FINAL "
        f"LEFT JOIN (SELECT event_id, failed FROM {db}.checks FINAL) AS c "
        "ON c.event_id = e.event_id "
        "WHERE e.event_id IN ("
        f"  SELECT d.event_id FROM {db}.decisions AS d FINAL "
        "  WHERE d.scorer = {scorer:String} AND " + states + ") "
        "AND e.ingested_at >= {since:DateTime64} AND e.ingested_at < {before:DateTime64} "
        "ORDER BY e.ingested_at, e.event_id LIMIT {limit:UInt32}"
    )
    return store.query(
        sql,
        {
            "scorer": scorer,
            "retryable": retryable,
            "since": since,
            "before": before,
            "limit": limit,
        },
    )
