"""Benchmark: input formats, the same events in each, decoded through the same path.

The events come from the demo traffic generator (`vigil.traffic`) and are written in
every input format: the native contract (``vigil``, JSONL), OTLP trace exports made by
the OpenTelemetry SDK and its OTLP encoders (``otlp_proto`` / ``otlp_json``; one export
per ``--spans-per-record`` traces, each trace a non-GenAI HTTP span around the chat span,
as an instrumented service sends them) and chat-completion logs (``openai``). The timed
part is what the live worker and `vigil replay` do per record: the format's decoder
(`monitor.replay.decode_messages`) and then `parse_event` on every decoded event. Each
format runs ``--repeats`` times in the same process; the best run is reported, with its
ratio to the native contract.

    .venv/bin/python bench/adapters.py [--events 20000] [--spans-per-record 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.events import parse_event
from monitor.pipeline import RawMessage
from monitor.replay import decode_messages
from vigil.traffic import TrafficSpec, generate_lines


def _spans(events: list[dict[str, Any]]) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for e in events:
        with (
            tracer.start_as_current_span("HTTP POST /chat"),
            tracer.start_as_current_span(f"chat {e['model']}") as span,
        ):
            response = e["response"]
            messages = [
                {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                for m in e["request"]["messages"]
            ]
            output = [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": response["content"]}],
                    "finish_reason": response.get("finish_reason") or "stop",
                }
            ]
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": e["model"],
                    "gen_ai.usage.input_tokens": response.get("prompt_tokens") or 0,
                    "gen_ai.usage.output_tokens": response.get("completion_tokens") or 0,
                    "gen_ai.input.messages": json.dumps(messages),
                    "gen_ai.output.messages": json.dumps(output),
                }
            )
    return list(exporter.get_finished_spans())


def _otlp_json(spans: list[ReadableSpan]) -> bytes:
    data = json_format.MessageToDict(encode_spans(spans))
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                # protobuf's JSON mapping spells ids in base64; OTLP/JSON in hex
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def _openai(e: dict[str, Any]) -> bytes:
    response = e["response"]
    return json.dumps(
        {
            "id": e["event_id"],
            "ts": e["ts"],
            "latency_ms": response.get("latency_ms"),
            "app": e.get("app", ""),
            "route": e.get("route", ""),
            "request": {"model": e["model"], "messages": e["request"]["messages"]},
            "response": {
                "model": e["model"],
                "choices": [
                    {
                        "message": {"role": "assistant", "content": response["content"]},
                        "finish_reason": response.get("finish_reason"),
                    }
                ],
                "usage": {
                    "prompt_tokens": response.get("prompt_tokens"),
                    "completion_tokens": response.get("completion_tokens"),
                },
            },
        }
    ).encode()


def _records(n: int, per_record: int) -> dict[str, list[bytes]]:
    lines = list(generate_lines(TrafficSpec(n=n, seed=5)))
    events = [json.loads(line) for line in lines]
    spans = _spans(events)
    # Each trace is two spans (HTTP root, chat); one record holds `per_record` traces.
    chunks = [spans[i : i + 2 * per_record] for i in range(0, len(spans), 2 * per_record)]
    return {
        "vigil": lines,
        "otlp_proto": [bytes(encode_spans(c).SerializeToString()) for c in chunks],
        "otlp_json": [_otlp_json(c) for c in chunks],
        "openai": [_openai(e) for e in events],
    }


def _run(fmt: str, raw: list[RawMessage], parse: Callable[[bytes], Any]) -> tuple[float, int]:
    started = time.perf_counter()
    messages, _ = decode_messages(fmt, raw)
    for message in messages:
        parse(message.value)
    return time.perf_counter() - started, len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--spans-per-record", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    records = _records(args.events, args.spans_per_record)
    native = 0.0
    for fmt, values in records.items():
        raw = [RawMessage(v, "bench", str(i)) for i, v in enumerate(values)]
        runs = [_run(fmt, raw, parse_event) for _ in range(args.repeats)]
        best, n = min(runs)
        rate = n / best
        native = native or rate
        size_mb = sum(len(v) for v in values) / 1e6
        print(
            f"{fmt:<11} {n} events in {len(values)} records ({size_mb:.1f} MB):"
            f" {rate:,.0f} events/s (best of {args.repeats}), {rate / native:.2f}x vigil"
        )


if __name__ == "__main__":
    main()
