"""How pipeline objects become table rows: one function per table, no SQL here."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from monitor.events import Event, FeedbackEvent, request_json
from monitor.sampling import RANK, Decision
from monitor.scorers.heuristics import CHECKS_VERSION, CheckResult

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


def event_row(event: Event, now: str) -> Row:
    request = event.request
    response = event.response
    shadow = event.shadow
    return {
        "event_id": event.event_id,
        "ts": _ts(event.ts),
        "app": event.app,
        "route": event.route,
        "model": event.model,
        "model_version": event.model_version,
        "prompt": event.prompt,
        "request": request_json(request),
        "response": response.content,
        "finish_reason": response.finish_reason or "",
        "latency_ms": response.latency_ms,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "feedback_rating": event.feedback.rating if event.feedback else None,
        "shadow_response": shadow.content if shadow else "",
        "shadow_model": shadow.model if shadow else "",
        "metadata": event.metadata,
        "ingested_at": now,
    }


def check_row(event: Event, result: CheckResult) -> Row:
    response = event.response
    return {
        "event_id": event.event_id,
        "ts": _ts(event.ts),
        "route": event.route,
        "model": event.model,
        "model_version": event.model_version,
        "checks_version": CHECKS_VERSION,
        "latency_ms": response.latency_ms,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "response_chars": result.response_chars,
        "empty": result.empty,
        "truncated": result.truncated,
        "refusal": result.refusal,
        "latency_slow": result.latency_slow,
        "too_long": result.too_long,
        "json_required": result.json_required,
        "json_ok": result.json_ok,
        "json_error": result.json_error,
        "pii_kinds": result.pii_kinds,
        "jailbreak_kinds": result.jailbreak_kinds,
        "failed": result.failed,
    }


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


def inline_feedback_row(event: Event, now: str) -> Row:
    assert event.feedback is not None
    return {
        "event_id": event.event_id,
        "ts": _ts(event.ts),
        "rating": event.feedback.rating,
        "comment": event.feedback.comment or "",
        "source": "inline",
        "received_at": now,
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


def embedding_row(event: Event, kind: str, embedder: str, vector: Any, now: str) -> Row:
    return {
        **_segment(event),
        "kind": kind,
        "embedder": embedder,
        "vector": vector,
        "created_at": now,
    }
