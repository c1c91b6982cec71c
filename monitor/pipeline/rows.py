"""How pipeline objects become table rows: one function per table, no SQL here."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from monitor.checks import CHECKS_VERSION, CheckResult
from monitor.events import Event, FeedbackEvent, request_raw
from monitor.pipeline.sampling import RANK, Decision
from monitor.scorers.base import Embedding, Judgment, ScoreResult

Row = dict[str, Any]


def _ts(ts: datetime) -> float:
    # Epoch seconds: ClickHouse reads a JSON number into DateTime64 as a Unix time, which
    # is ~10x cheaper to produce than an ISO string (and no cache can help: event times
    # are nearly all distinct). Float precision at today's epoch is ~0.2 us; columns keep ms.
    return ts.timestamp()


def _segment(event: Event) -> Row:
    """The columns every per-event table starts with: the key and the segment to split by."""
    return {
        "event_id": event.event_id,
        "ts": _ts(event.ts),
        "route": event.route,
        "model": event.model,
        "model_version": event.model_version,
    }


#: Columns of the per-event tables, in the order their value tuples use. The hot path
#: encodes `ingest_values` (both rows at once) into `Encoded` lines; the dict builders
#: below are the same values zipped with these names.
EVENT_COLUMNS = (
    "event_id", "ts", "app", "route", "model", "model_version", "prompt", "request",
    "response", "finish_reason", "latency_ms", "prompt_tokens", "completion_tokens",
    "feedback_rating", "shadow_response", "shadow_model", "metadata", "ingested_at",
)  # fmt: skip
CHECK_COLUMNS = (
    "event_id", "ts", "route", "model", "model_version", "checks_version", "latency_ms",
    "prompt_tokens", "completion_tokens", "response_chars", "empty", "truncated", "refusal",
    "latency_slow", "too_long", "json_required", "json_ok", "json_error", "pii_kinds",
    "jailbreak_kinds", "failed",
)  # fmt: skip
FEEDBACK_COLUMNS = ("event_id", "ts", "rating", "comment", "source", "received_at")


def event_values(event: Event, at: float, now: str) -> tuple[Any, ...]:
    """One ``events`` row in `EVENT_COLUMNS` order (``at``: the event time, Unix seconds),
    for `Encoded` (the request is a raw JSON object, which the store reads as its text)."""
    response = event.response
    shadow = event.shadow
    feedback = event.feedback
    return (
        event.event_id,
        at,
        event.app,
        event.route,
        event.model,
        event.model_version,
        event.prompt,
        request_raw(event.request),
        response.content,
        response.finish_reason or "",
        response.latency_ms,
        response.prompt_tokens,
        response.completion_tokens,
        feedback.rating if feedback is not None else None,
        shadow.content if shadow is not None else "",
        shadow.model if shadow is not None else "",
        event.metadata,
        now,
    )


#: Columns of the one every-event insert (table ``ingest``, see monitor.store.schema):
#: an ``events`` row followed by what only ``checks`` has.
INGEST_COLUMNS = EVENT_COLUMNS + tuple(c for c in CHECK_COLUMNS if c not in EVENT_COLUMNS)


def ingest_values(event: Event, at: float, now: str, result: CheckResult) -> tuple[Any, ...]:
    """One ``ingest`` row in `INGEST_COLUMNS` order: the event and its checks."""
    return (
        *event_values(event, at, now),
        CHECKS_VERSION,
        result.response_chars,
        result.empty,
        result.truncated,
        result.refusal,
        result.latency_slow,
        result.too_long,
        result.json_required,
        result.json_ok,
        result.json_error,
        result.pii_kinds,
        result.jailbreak_kinds,
        result.failed,
    )


def inline_feedback_values(event: Event, at: float, now: str) -> tuple[Any, ...]:
    """One ``feedback`` row (source ``inline``) in `FEEDBACK_COLUMNS` order."""
    feedback = event.feedback
    assert feedback is not None
    return (event.event_id, at, feedback.rating, feedback.comment or "", "inline", now)


def decision_row(event: Event, decision: Decision, now: str) -> Row:
    return {
        **_segment(event),
        "scorer": decision.scorer,
        "decision": decision.decision,
        "reason": decision.reason,
        "rank": RANK[decision.decision],
        "decided_at": now,
    }


def score_row(
    event: Event, scorer: str, version: str, name: str, value: float, label: str, now: str
) -> Row:
    return {
        **_segment(event),
        "scorer": scorer,
        "scorer_version": version,
        "name": name,
        "value": value,
        "label": label,
        "created_at": now,
    }


def late_feedback_row(feedback: FeedbackEvent, now: str) -> Row:
    return {
        "event_id": feedback.event_id,
        "ts": _ts(feedback.ts),
        "rating": feedback.rating,
        "comment": feedback.comment or "",
        "source": "late",
        "received_at": now,
    }


def dead_letter_row(
    source: str, position: str, reason: str, detail: str, raw: bytes, now: str
) -> Row:
    return {
        "source": source,
        "position": position,
        "reason": reason,
        "detail": detail[:2000],
        "raw_b64": base64.b64encode(raw).decode(),
        "received_at": now,
    }


def incident_row(
    event: Event, risk_type: str, category: str, score: float, source: str, now: str
) -> Row:
    return {
        **_segment(event),
        "risk_type": risk_type,
        "category": category,
        "score": score,
        "source": source,
        "created_at": now,
    }


def embedding_row(event: Event, embedding: Embedding, now: str) -> Row:
    return {
        **_segment(event),
        "kind": embedding.kind,
        "embedder": embedding.embedder,
        "vector": embedding.vector,
        "created_at": now,
    }


def judgment_row(event: Event, judgment: Judgment, now: str) -> Row:
    j = judgment
    return {
        **_segment(event),
        "judge_version": j.judge_version,
        "cache_key": j.cache_key,
        "judge_model": j.judge_model,
        "rubric": j.rubric,
        "rubric_version": j.rubric_version,
        "template_hash": j.template_hash,
        "mode": j.mode,
        "cascade": j.cascade,
        "scores": j.scores,
        "reasons": j.reasons,
        "overall": j.overall,
        "pair_winner": j.pair_winner,
        "pair_orders": list(j.pair_orders),
        "pair_reasons": list(j.pair_reasons),
        "shadow_model": j.shadow_model,
        "cached": int(j.cached),
        "calls": j.calls,
        "repaired": int(j.repaired),
        "prompt_tokens": j.prompt_tokens,
        "completion_tokens": j.completion_tokens,
        "cost": j.cost,
        "latency_ms": j.latency_ms,
        "created_at": now,
    }


def result_rows(event: Event, scorer: str, result: ScoreResult, now: str) -> dict[str, list[Row]]:
    """The rows of a scorer's typed outputs (all but its scores), by table; a table the
    result has nothing for is absent. ``scorer`` is the source of its incidents."""
    tables: dict[str, list[Row]] = {}
    if result.embeddings:
        tables["embeddings"] = [embedding_row(event, e, now) for e in result.embeddings]
    if result.incidents:
        tables["incidents"] = [
            incident_row(event, i.risk_type, i.category, i.score, scorer, now)
            for i in result.incidents
        ]
    if result.judgment is not None:
        tables["judgments"] = [judgment_row(event, result.judgment, now)]
    return tables
