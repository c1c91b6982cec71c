"""Scorer results as OpenTelemetry ``gen_ai.evaluation.result`` events (log records).

GenAI semantic conventions (events, development status): one event per evaluation,
named ``gen_ai.evaluation.result``, with ``gen_ai.evaluation.name`` (required),
``gen_ai.evaluation.score.value`` / ``gen_ai.evaluation.score.label`` (when applicable),
``gen_ai.evaluation.explanation`` and ``gen_ai.response.id`` (when known). The event
"SHOULD be parented to the GenAI operation span being evaluated": an event that came
from a trace (metadata ``trace_id`` / ``span_id``, `monitor.events.formats.genai`) gets
that trace and span id, so a tracing backend shows the verdict on the span itself.
"""

from __future__ import annotations

import re

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from monitor.events import Event
from monitor.scorers.base import ScoreResult

EVENT_NAME = "gen_ai.evaluation.result"
_SEVERITY_INFO = 9  # SEVERITY_NUMBER_INFO
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
#: What an explanation may hold: a judge's reason is short, but it is model output.
_EXPLANATION_MAX = 2000


def _kv(key: str, value: str | float) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    return KeyValue(key=key, value=AnyValue(double_value=float(value)))


def evaluation_name(scorer: str, score: str) -> str:
    """``toxicity`` for a scorer's headline score, ``judge.helpfulness`` for the others."""
    return score if score == scorer else f"{scorer}.{score}"


def _label(scorer: str, name: str, label: str, result: ScoreResult) -> str:
    if scorer == "toxicity" and name == scorer:
        # The stored label names the model's category; what a reader of an evaluation
        # wants is the verdict, which the scorer's threshold made an incident or not.
        return "toxic" if any(i.risk_type == "toxicity" for i in result.incidents) else "not_toxic"
    return label


def evaluation_records(
    event: Event, scorer: str, result: ScoreResult, now_ns: int
) -> list[LogRecord]:
    """One event per score of ``result`` (the judge's reasons as explanations)."""
    meta = event.metadata
    trace_id, span_id = meta.get("trace_id", ""), meta.get("span_id", "")
    linked = bool(_TRACE_ID.fullmatch(trace_id) and _SPAN_ID.fullmatch(span_id))
    reasons = result.judgment.reasons if result.judgment is not None else {}
    common = [_kv("vigil.event_id", event.event_id)]
    if meta.get("gen_ai.response.id"):
        common.append(_kv("gen_ai.response.id", meta["gen_ai.response.id"]))
    records = []
    for score in result.scores:
        attributes = [
            _kv("gen_ai.evaluation.name", evaluation_name(scorer, score.name)),
            _kv("gen_ai.evaluation.score.value", score.value),
        ]
        label = _label(scorer, score.name, score.label, result)
        if label:
            attributes.append(_kv("gen_ai.evaluation.score.label", label))
        reason = reasons.get(score.name)
        if reason:
            attributes.append(_kv("gen_ai.evaluation.explanation", reason[:_EXPLANATION_MAX]))
        record = LogRecord(
            time_unix_nano=now_ns,
            observed_time_unix_nano=now_ns,
            severity_number=_SEVERITY_INFO,  # type: ignore[arg-type]
            event_name=EVENT_NAME,
            attributes=attributes + common,
        )
        if linked:
            record.trace_id = bytes.fromhex(trace_id)
            record.span_id = bytes.fromhex(span_id)
        records.append(record)
    return records
