"""OpenAI chat-completion logs (``openai``): the mapping per field, and `vigil replay
--format openai` storing what the mapping says (and dead-lettering what it refuses)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import EventError
from monitor.events import parse_event
from monitor.events.formats import decode_openai
from monitor.replay import replay_file
from monitor.store.embedded import EmbeddedStore
from tests.fixtures.broker import NO_MODEL_SCORERS

_LOG = {
    "id": "log-1",
    "ts": "2026-11-22T09:00:00Z",
    "latency_ms": 812.5,
    "app": "support-bot",
    "route": "/chat",
    "metadata": {"tenant": "acme", "region": 3},
    "request": {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "How do refunds work?"},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
        "stream": False,  # not a sampling parameter: not kept
    },
    "response": {
        "id": "chatcmpl-42",
        "object": "chat.completion",
        "created": 1795338000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Within 30 days."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27},
    },
}
#: Only the request and the response: id, time and model come from the response.
_BARE = {"request": _LOG["request"], "response": {**_LOG["response"], "id": "chatcmpl-43"}}  # type: ignore[dict-item]


def test_each_field_maps() -> None:
    [raw] = decode_openai(json.dumps(_LOG).encode()).events
    event = parse_event(raw)
    assert event.event_id == "log-1"
    assert event.ts.isoformat() == "2026-11-22T09:00:00+00:00"
    assert event.model == "gpt-4o-mini-2024-07-18"  # the response's model wins
    assert (event.app, event.route) == ("support-bot", "/chat")
    assert [(m.role, m.text) for m in event.request.messages] == [
        ("system", "Be brief."),
        ("user", "How do refunds work?"),
    ]
    assert event.request.params == {"temperature": 0.2, "max_tokens": 64}
    assert event.response.content == "Within 30 days."
    assert event.response.finish_reason == "stop"
    assert event.response.latency_ms == 812.5
    assert (event.response.prompt_tokens, event.response.completion_tokens) == (21, 6)
    assert event.metadata == {"tenant": "acme", "region": "3", "gen_ai.response.id": "chatcmpl-42"}
    assert event.content_captured


def test_defaults_come_from_the_response() -> None:
    event = parse_event(decode_openai(json.dumps(_BARE).encode()).events[0])
    assert event.event_id == "chatcmpl-43"
    assert event.ts.timestamp() == 1795338000
    assert event.response.latency_ms is None


@pytest.mark.parametrize("raw", [b"{nope", b"[1, 2]", b'{"request": {}}'])
def test_a_broken_log_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(EventError) as caught:
        decode_openai(raw)
    assert caught.value.reason == "invalid_openai_log"


def test_replay_stores_the_mapped_events(tmp_path: Path) -> None:
    path = tmp_path / "openai.jsonl"
    lines = [json.dumps(_LOG), json.dumps(_BARE), '{"request": 1, "response": 2}']
    path.write_text("\n".join(lines) + "\n")
    settings = load_settings(
        overrides={"store": {"data_dir": str(tmp_path / "data")}, **NO_MODEL_SCORERS}
    )
    summary = asyncio.run(replay_file(settings, path, "openai"))
    assert (summary.read, summary.stored) == (3, 2)
    assert dict(summary.rejected) == {"invalid_openai_log": 1}
    store = EmbeddedStore(tmp_path / "data")
    try:
        rows = store.query(
            "SELECT event_id, model, app, route, prompt, response, finish_reason, latency_ms,"
            " prompt_tokens, completion_tokens, metadata['gen_ai.response.id'] AS response_id"
            " FROM vigil.events FINAL ORDER BY event_id"
        )
        [dead] = store.query("SELECT reason, position FROM vigil.dead_letters FINAL")
        checks = store.query("SELECT empty, refusal FROM vigil.checks FINAL")
    finally:
        store.close()
    assert rows == [
        {
            "event_id": "chatcmpl-43", "model": "gpt-4o-mini-2024-07-18", "app": "",
            "route": "", "prompt": "How do refunds work?", "response": "Within 30 days.",
            "finish_reason": "stop", "latency_ms": None, "prompt_tokens": 21,
            "completion_tokens": 6, "response_id": "chatcmpl-43",
        },
        {
            "event_id": "log-1", "model": "gpt-4o-mini-2024-07-18", "app": "support-bot",
            "route": "/chat", "prompt": "How do refunds work?", "response": "Within 30 days.",
            "finish_reason": "stop", "latency_ms": 812.5, "prompt_tokens": 21,
            "completion_tokens": 6, "response_id": "chatcmpl-42",
        },
    ]  # fmt: skip
    assert (dead["reason"], dead["position"]) == ("invalid_openai_log", "3")
    assert checks == [{"empty": 0, "refusal": 0}] * 2  # text captured: the checks ran
