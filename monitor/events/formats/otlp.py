"""OTLP trace export requests (``otlp_proto`` / ``otlp_json``) into contract events.

One record is one ``ExportTraceServiceRequest`` (what the OpenTelemetry Collector's Kafka
exporter writes per message) holding many spans: each GenAI span becomes one event
(`monitor.events.formats.genai`), every other span is skipped and counted. Protobuf is
parsed by the generated message; OTLP/JSON is walked directly (its ids are hex, its int64
values strings). Both feed the same `SpanFacts`, so both encodings map the same way.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
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
    except msgspec.DecodeError as exc:
        raise EventError("invalid_otlp", f"not an OTLP/JSON trace export: {exc}") from exc
    if not isinstance(data, dict):
        raise EventError("invalid_otlp", "top-level JSON is not an object")
    try:
        return _json_events(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise EventError("invalid_otlp", f"not an OTLP/JSON trace export: {exc!r}") from exc


# -- OTLP/JSON, walked directly -------------------------------------------------------
# protobuf's json_format.ParseDict built the same message 10x slower than the walk; the
# mapping (`SpanFacts`) is shared, so both encodings still give the same events. Field
# names are accepted in lowerCamelCase (OTLP/JSON) and as in the .proto, as ParseDict did.


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _items(obj: Any, camel: str, snake: str) -> list[Any]:
    if obj is None:
        return []
    value = _field(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{camel} is not a list")
    return value


def _json_events(data: dict[str, Any]) -> Decoded:
    out = Decoded()
    for resource_spans in _items(data, "resourceSpans", "resource_spans"):
        resource = _json_attributes(_items(resource_spans.get("resource"), "attributes", ""))
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans", "spans"):
                attributes = _json_attributes(_items(span, "attributes", ""))
                if not is_genai(attributes):
                    out.skipped += 1
                    continue
                facts = SpanFacts(
                    trace_id=_hex_id(_field(span, "traceId", "trace_id")),
                    span_id=_hex_id(_field(span, "spanId", "span_id")),
                    name=str(span.get("name") or ""),
                    start_ns=int(_field(span, "startTimeUnixNano", "start_time_unix_nano") or 0),
                    end_ns=int(_field(span, "endTimeUnixNano", "end_time_unix_nano") or 0),
                    attributes=attributes,
                    resource=resource,
                    events=[
                        (str(e.get("name") or ""), _json_attributes(_items(e, "attributes", "")))
                        for e in _items(span, "events", "events")
                    ],
                )
                out.events.append(_ENCODE.encode(span_event(facts)))
    return out


def _hex_id(value: Any) -> str:
    """A trace or span id as OTLP/JSON spells it (hex), normalised; '' when absent."""
    return bytes.fromhex(value).hex() if value else ""


def _json_attributes(pairs: list[Any]) -> Attributes:
    return {str(kv["key"]): _json_value(kv.get("value")) for kv in pairs}


def _json_value(value: Any) -> Any:
    if not value:
        return None
    for name in ("stringValue", "string_value"):
        if name in value:
            return value[name]
    for name in ("boolValue", "bool_value"):
        if name in value:
            return bool(value[name])
    for name in ("intValue", "int_value"):
        if name in value:
            return int(value[name])  # int64 is a JSON string in OTLP/JSON
    for name in ("doubleValue", "double_value"):
        if name in value:
            return float(value[name])
    array = _field(value, "arrayValue", "array_value")
    if array is not None:
        return [_json_value(v) for v in _items(array, "values", "values")]
    kvlist = _field(value, "kvlistValue", "kvlist_value")
    if kvlist is not None:
        return _json_attributes(_items(kvlist, "values", "values"))
    raw = _field(value, "bytesValue", "bytes_value")
    if raw is not None:
        return base64.b64decode(raw).hex()
    return None


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
