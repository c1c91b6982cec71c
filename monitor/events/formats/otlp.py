"""OTLP trace export requests (``otlp_proto`` / ``otlp_json``) into contract events.

One record is one ``ExportTraceServiceRequest`` (what the OpenTelemetry Collector's Kafka
exporter writes per message) holding many spans: each GenAI span becomes one event
(`monitor.events.formats.genai`), every other span is skipped and counted. OTLP/JSON
spells trace and span ids in hex, where protobuf's JSON mapping expects base64: they are
rewritten before the message is parsed, so both encodings go through one mapping.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from monitor.errors import EventError
from monitor.events.formats.decoded import Decoded
from monitor.events.formats.genai import Attributes, SpanFacts, is_genai, span_event

_ENCODE = msgspec.json.Encoder()


def decode_otlp_proto(raw: bytes) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(raw)
    except (DecodeError, ValueError) as exc:
        raise EventError("invalid_otlp", f"not an OTLP protobuf trace export: {exc}") from exc
    return _events(request)


def decode_otlp_json(raw: bytes) -> Decoded:
    try:
        data = msgspec.json.decode(raw)
        if not isinstance(data, dict):
            raise EventError("invalid_otlp", "top-level JSON is not an object")
        _hex_ids_to_base64(data)
        request = json_format.ParseDict(
            data, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except (msgspec.DecodeError, json_format.ParseError, ValueError, TypeError) as exc:
        raise EventError("invalid_otlp", f"not an OTLP/JSON trace export: {exc}") from exc
    return _events(request)


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    for resource_spans in data.get("resourceSpans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or []:
            for span in scope_spans.get("spans") or []:
                for key in ("traceId", "spanId", "parentSpanId"):
                    value = span.get(key)
                    if isinstance(value, str) and value:
                        span[key] = base64.b64encode(bytes.fromhex(value)).decode()


def _events(request: ExportTraceServiceRequest) -> Decoded:
    out = Decoded()
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _attributes(span.attributes)
                if not is_genai(attributes):
                    out.skipped += 1
                    continue
                facts = SpanFacts(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=attributes,
                    resource=resource,
                    events=[(e.name, _attributes(e.attributes)) for e in span.events],
                )
                out.events.append(_ENCODE.encode(span_event(facts)))
    return out


def _attributes(pairs: Any) -> Attributes:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)
