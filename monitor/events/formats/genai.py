"""One GenAI span's attributes as a contract event (OpenTelemetry GenAI semantic
conventions, their older names, and OpenInference's ``llm.*`` attributes).

Content is opt-in in OpenTelemetry: a span without captured messages is still an event,
with what it has (model, tokens, latency, finish reason) and metadata
``content_captured: "false"``; its request holds one empty user message and its answer
is empty, so that the contract's shape holds, and the flag says why they are empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

Attributes = dict[str, Any]

#: Attributes that make a span an LLM call.
_MARKERS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "llm.model_name",
)
_METADATA = {
    "gen_ai.operation.name": "gen_ai.operation.name",
    "gen_ai.provider.name": "gen_ai.provider.name",
    "gen_ai.system": "gen_ai.provider.name",
    "llm.provider": "gen_ai.provider.name",
    "gen_ai.conversation.id": "gen_ai.conversation.id",
    "gen_ai.response.id": "gen_ai.response.id",
}
_PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
}
_OLD_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


@dataclass(slots=True)
class SpanFacts:
    """What the mapping needs of one span, whichever encoding it came in."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    resource: Attributes = field(default_factory=dict)
    events: list[tuple[str, Attributes]] = field(default_factory=list)


def is_genai(attributes: Attributes) -> bool:
    return any(k in attributes for k in _MARKERS) or (
        attributes.get("openinference.span.kind") == "LLM"
    )


def _first(attributes: Attributes, *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value not in (None, ""):
            return value
    return None


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return None
    return value


def _parts_text(message: dict[str, Any]) -> str:
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [str(p.get("content", "")) for p in parts if isinstance(p, dict)]
        return "\n".join(t for t in texts if t)
    return str(message.get("content") or "")


def _semconv_messages(value: Any) -> list[dict[str, str]]:
    decoded = _json(value)
    if not isinstance(decoded, list):
        return []
    return [
        {"role": str(m.get("role") or "user"), "content": _parts_text(m)}
        for m in decoded
        if isinstance(m, dict)
    ]


def _openinference_messages(attributes: Attributes, prefix: str) -> list[dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if not index.isdigit() or rest not in ("message.role", "message.content"):
            continue
        found.setdefault(int(index), {})[rest.removeprefix("message.")] = str(value)
    return [
        {"role": m.get("role", "user"), "content": m.get("content", "")}
        for _, m in sorted(found.items())
    ]


def _instructions(value: Any) -> list[dict[str, str]]:
    decoded = _json(value)
    if isinstance(decoded, list):
        texts = [str(p.get("content", "")) for p in decoded if isinstance(p, dict)]
        text = "\n".join(t for t in texts if t)
    else:
        text = str(value) if value else ""
    return [{"role": "system", "content": text}] if text else []


def _request_messages(facts: SpanFacts) -> list[dict[str, str]]:
    a = facts.attributes
    inputs = _semconv_messages(a.get("gen_ai.input.messages")) or _openinference_messages(
        a, "llm.input_messages."
    )
    messages = _instructions(a.get("gen_ai.system_instructions")) + inputs
    if not messages:
        for name, attrs in facts.events:
            role = _OLD_EVENTS.get(name)
            if role is not None and attrs.get("content") is not None:
                messages.append({"role": role, "content": str(attrs["content"])})
    return messages


def _answer(facts: SpanFacts) -> tuple[str | None, str | None]:
    """The answer text (None: not captured) and the finish reason the output names."""
    a = facts.attributes
    output = _json(a.get("gen_ai.output.messages"))
    if isinstance(output, list) and output:
        texts = [_parts_text(m) for m in output if isinstance(m, dict)]
        reasons = [m.get("finish_reason") for m in output if isinstance(m, dict)]
        return "\n".join(texts), next((str(r) for r in reasons if r), None)
    inference = _openinference_messages(a, "llm.output_messages.")
    if inference:
        return "\n".join(m["content"] for m in inference), None
    for name, attrs in facts.events:
        if name == "gen_ai.choice":
            message = _json(attrs.get("message"))
            if isinstance(message, dict):
                return str(message.get("content") or ""), attrs.get("finish_reason")
            return str(attrs.get("content") or ""), attrs.get("finish_reason")
    return None, None


def span_event(facts: SpanFacts) -> dict[str, Any]:
    """The contract event of one GenAI span."""
    a = facts.attributes
    messages = _request_messages(facts)
    content, output_reason = _answer(facts)
    captured = bool(messages) or content is not None
    reasons = a.get("gen_ai.response.finish_reasons")
    finish = reasons[0] if isinstance(reasons, list) and reasons else reasons or output_reason
    response: dict[str, Any] = {"content": content or "", "finish_reason": finish}
    if facts.end_ns >= facts.start_ns > 0:
        response["latency_ms"] = (facts.end_ns - facts.start_ns) / 1e6
    prompt = _first(
        a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"
    )
    completion = _first(
        a,
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    )
    if prompt is not None:
        response["prompt_tokens"] = int(prompt)
    if completion is not None:
        response["completion_tokens"] = int(completion)
    metadata = {"trace_id": facts.trace_id, "span_id": facts.span_id, "span_name": facts.name}
    for key, name in _METADATA.items():
        if a.get(key) not in (None, ""):
            metadata.setdefault(name, str(a[key]))
    metadata["content_captured"] = "true" if captured else "false"
    ts = datetime.fromtimestamp(facts.start_ns / 1e9, tz=UTC) if facts.start_ns else None
    return {
        "event_id": f"{facts.trace_id}-{facts.span_id}",
        "ts": (ts or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "model": str(
            _first(a, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
            or "unknown"
        ),
        "app": str(facts.resource.get("service.name") or ""),
        "model_version": str(facts.resource.get("service.version") or ""),
        "request": {
            "messages": messages or [{"role": "user", "content": ""}],
            "params": {p: a[k] for k, p in _PARAMS.items() if k in a},
        },
        "response": response,
        "metadata": metadata,
    }
