"""OpenAI-style logs (``openai``): one JSON record holding a chat-completions request and
its response, as gateways and proxies log them, into one contract event.

Accepted shapes: ``{"request": {...}, "response": {...}}`` with optional ``id``, ``ts``
(RFC 3339 or epoch seconds), ``latency_ms``, ``app`` / ``route`` and ``metadata``; the
request is the chat-completions body (``model``, ``messages``, sampling parameters), the
response the chat-completion object (``id``, ``model``, ``created``, ``choices``,
``usage``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from monitor.errors import EventError
from monitor.events.formats.decoded import Decoded

_ENCODE = msgspec.json.Encoder()
_PARAMS = ("temperature", "max_tokens", "max_completion_tokens", "top_p", "seed", "stop")


def decode_openai(raw: bytes) -> Decoded:
    try:
        record = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise EventError("invalid_openai_log", f"not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise EventError("invalid_openai_log", "top-level JSON is not an object")
    request, response = record.get("request"), record.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise EventError("invalid_openai_log", "needs a 'request' and a 'response' object")
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    usage = response.get("usage") or {}
    answer: dict[str, Any] = {
        "content": str(message.get("content") or ""),
        "finish_reason": choice.get("finish_reason"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }
    if record.get("latency_ms") is not None:
        answer["latency_ms"] = record["latency_ms"]
    metadata = {str(k): str(v) for k, v in (record.get("metadata") or {}).items()}
    if response.get("id"):
        metadata["gen_ai.response.id"] = str(response["id"])
    event = {
        "event_id": str(record.get("id") or response.get("id") or ""),
        "ts": _ts(record.get("ts") or response.get("created")),
        "model": str(response.get("model") or request.get("model") or ""),
        "app": str(record.get("app") or ""),
        "route": str(record.get("route") or ""),
        "request": {
            "messages": request.get("messages") or [],
            "params": {k: request[k] for k in _PARAMS if k in request},
        },
        "response": {k: v for k, v in answer.items() if v is not None},
        "metadata": metadata,
    }
    return Decoded([_ENCODE.encode(event)])


def _ts(value: Any) -> Any:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")
    return value
