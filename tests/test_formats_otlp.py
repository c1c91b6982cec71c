"""OTLP trace exports made by the OpenTelemetry SDK itself, decoded into contract events."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.errors import EventError
from monitor.events import parse_event
from monitor.events.formats import FORMATS, decode_otlp_json, decode_otlp_proto

_INPUT = [{"role": "user", "parts": [{"type": "text", "content": "How do refunds work?"}]}]
_OUTPUT = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Within 30 days."}],
        "finish_reason": "stop",
    }
]


def _spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-bot", "service.version": "1.4.2"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("HTTP GET /refunds"):  # not GenAI: skipped
        with tracer.start_as_current_span("chat acme-llama") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "acme-llama",
                    "gen_ai.response.model": "acme-llama-0613",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.usage.output_tokens": 5,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.response.id": "chatcmpl-1",
                    "gen_ai.conversation.id": "conv-9",
                    "gen_ai.system_instructions": json.dumps(
                        [{"type": "text", "content": "Be brief."}]
                    ),
                    "gen_ai.input.messages": json.dumps(_INPUT),
                    "gen_ai.output.messages": json.dumps(_OUTPUT),
                }
            )
        with tracer.start_as_current_span("chat old") as span:  # older names, span events
            span.set_attributes(
                {
                    "gen_ai.system": "vllm",
                    "gen_ai.request.model": "old-model",
                    "gen_ai.usage.prompt_tokens": 7,
                    "gen_ai.usage.completion_tokens": 3,
                }
            )
            span.add_event("gen_ai.user.message", {"content": "hello"})
            span.add_event("gen_ai.choice", {"message": json.dumps({"content": "hi!"})})
        with tracer.start_as_current_span("no content") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
        with tracer.start_as_current_span("phoenix llm") as span:
            span.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-x",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "ping",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "pong",
                    "llm.token_count.prompt": 2,
                    "llm.token_count.completion": 1,
                }
            )
    return list(exporter.get_finished_spans())


def _proto() -> bytes:
    return bytes(encode_spans(_spans()).SerializeToString())


def _otlp_json() -> bytes:
    """OTLP/JSON as the Collector writes it: camelCase fields, hex trace and span ids."""
    spans = _spans()
    data = json_format.MessageToDict(encode_spans(spans))
    by_name = {s.name: s for s in spans}
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                context = by_name[span["name"]].context
                span["traceId"] = f"{context.trace_id:032x}"
                span["spanId"] = f"{context.span_id:016x}"
                span.pop("parentSpanId", None)
    return json.dumps(data).encode()


@pytest.fixture(params=["otlp_proto", "otlp_json"])
def decoded(request: pytest.FixtureRequest) -> dict[str, object]:
    raw = _proto() if request.param == "otlp_proto" else _otlp_json()
    out = FORMATS[request.param](raw)
    events = [parse_event(e) for e in out.events]
    return {"skipped": out.skipped, "events": {e.metadata["span_name"]: e for e in events}}


def test_non_genai_spans_are_skipped_and_counted(decoded: dict[str, object]) -> None:
    assert decoded["skipped"] == 1
    assert set(decoded["events"]) == {"chat acme-llama", "chat old", "no content", "phoenix llm"}  # type: ignore[call-overload]


def test_current_semantic_conventions_map_per_attribute(decoded: dict[str, object]) -> None:
    event = decoded["events"]["chat acme-llama"]  # type: ignore[index]
    trace_id, span_id = event.metadata["trace_id"], event.metadata["span_id"]
    assert len(trace_id) == 32 and len(span_id) == 16
    assert event.event_id == f"{trace_id}-{span_id}"
    assert event.model == "acme-llama-0613"  # response model wins over request model
    assert (event.app, event.model_version) == ("support-bot", "1.4.2")
    assert [(m.role, m.text) for m in event.request.messages] == [
        ("system", "Be brief."),
        ("user", "How do refunds work?"),
    ]
    assert event.request.params == {"temperature": 0.2}
    assert event.response.content == "Within 30 days."
    assert event.response.finish_reason == "stop"
    assert (event.response.prompt_tokens, event.response.completion_tokens) == (12, 5)
    assert event.response.latency_ms is not None and event.response.latency_ms >= 0
    assert event.metadata["gen_ai.provider.name"] == "openai"
    assert event.metadata["gen_ai.operation.name"] == "chat"
    assert event.metadata["gen_ai.conversation.id"] == "conv-9"
    assert event.metadata["gen_ai.response.id"] == "chatcmpl-1"
    assert event.metadata["content_captured"] == "true"


def test_older_names_and_span_events(decoded: dict[str, object]) -> None:
    event = decoded["events"]["chat old"]  # type: ignore[index]
    assert event.model == "old-model"
    assert event.metadata["gen_ai.provider.name"] == "vllm"
    assert (event.response.prompt_tokens, event.response.completion_tokens) == (7, 3)
    assert [(m.role, m.text) for m in event.request.messages] == [("user", "hello")]
    assert event.response.content == "hi!"


def test_openinference_attributes(decoded: dict[str, object]) -> None:
    event = decoded["events"]["phoenix llm"]  # type: ignore[index]
    assert event.model == "gpt-x"
    assert event.prompt == "ping" and event.response.content == "pong"
    assert (event.response.prompt_tokens, event.response.completion_tokens) == (2, 1)


def test_span_without_content_is_kept_and_flagged(decoded: dict[str, object]) -> None:
    event = decoded["events"]["no content"]  # type: ignore[index]
    assert event.metadata["content_captured"] == "false"
    assert event.response.content == "" and event.prompt == ""


def test_proto_and_json_agree_on_ids() -> None:
    spans = _spans()
    wanted = {f"{s.context.trace_id:032x}-{s.context.span_id:016x}" for s in spans if s.attributes}
    raw = bytes(encode_spans(spans).SerializeToString())
    assert {parse_event(e).event_id for e in decode_otlp_proto(raw).events} == wanted


@pytest.mark.parametrize(
    ("decoder", "raw"),
    [(decode_otlp_proto, b"\xff\xff\xff not protobuf"), (decode_otlp_json, b"{not json")],
)
def test_corrupt_record_is_refused_with_a_reason(decoder, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EventError) as caught:
        decoder(raw)
    assert caught.value.reason == "invalid_otlp"


def test_text_checks_and_scorers_do_not_apply_without_captured_content(
    decoded: dict[str, object],
) -> None:
    from monitor.checks import Heuristics
    from monitor.config import load_settings
    from monitor.pipeline.sampling import Sampler

    settings = load_settings()
    bare, full = decoded["events"]["no content"], decoded["events"]["chat acme-llama"]  # type: ignore[index]
    assert not bare.content_captured and full.content_captured
    [na, ran] = Heuristics(settings.heuristics).check_many([bare, full])
    assert (na.empty, na.refusal, na.json_ok, na.response_chars, na.failed) == (
        None,
        None,
        None,
        0,
        [],
    )
    assert (ran.empty, ran.refusal) == (False, False)
    sampler = Sampler(settings.sampling, ["judge", "toxicity"])
    assert {(d.decision, d.reason) for d in sampler.decide(bare, na.failed)} == {
        ("sampled_out", "no_content")
    }
