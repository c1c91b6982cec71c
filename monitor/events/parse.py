"""The event contract (topic ``vigil.events``) as the pipeline uses it: structs and parsing.

One message is one JSON object describing one request/response pair of the monitored
service. Required: ``event_id``, ``ts``, ``model``, ``request.messages`` (non-empty) and
``response.content``; everything else is optional. Top-level fields this contract does
not name are kept in ``metadata`` (JSON-encoded when they are not strings), never dropped.

`parse_event` is the one entry point for bytes off the wire and never raises anything but
`EventError`, whose ``reason`` is a short code stored with the bytes in the dead-letter
queue, so a bad message is explained and kept, and the worker goes on.

Parsing is the largest per-event cost of the hot path, so it has two steps:

1. msgspec decodes straight into the frozen structs below (about 3x faster than pydantic),
   strictly: exact JSON types, RFC 3339 times with an offset, no unknown top-level field;
   an event with unknown top-level fields takes a second msgspec pass that moves them
   into metadata;
2. anything that step refuses goes to the pydantic models of `monitor.events.schema`, the
   authoritative contract: they either reject it with a reason, or accept it with their
   looser coercions (numbers in metadata, "812" for a number) and it becomes a struct.

So validity and reasons are pydantic's; msgspec only makes the common case cheap. One
known difference: digits of a time past the microsecond are rounded by msgspec and cut by
pydantic (1 µs apart at most; the store keeps milliseconds).
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import ValidationError

from monitor.errors import EventError
from monitor.events.model import Event, FeedbackEvent, Request
from monitor.events.schema import EventSchema, FeedbackEventSchema, translate

#: Larger messages are rejected before parsing: a runaway producer must not exhaust memory.
MAX_EVENT_BYTES = 1_000_000

REJECT_REASONS = (
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
    # Set by the pipeline, not by parsing: a valid event whose ts lies outside the
    # bounds of `monitor.pipeline.event_time` (settings ``events``).
    "ts_out_of_range",
)

_EVENT = msgspec.json.Decoder(Event)
_FEEDBACK = msgspec.json.Decoder(FeedbackEvent)
_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODE = msgspec.json.Encoder()
_FIELDS = frozenset(Event.__struct_fields__)


def _check_size(raw: bytes | str) -> None:
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{len(raw)} bytes exceeds {MAX_EVENT_BYTES}")


def _as_metadata_text(value: Any) -> str:
    return value if isinstance(value, str) else _ENCODE.encode(value).decode()


def _with_extra_fields(raw: bytes | str) -> Event | None:
    """The fast path for an event with unknown top-level fields, or None to fall back."""
    try:
        top = _TOP_LEVEL.decode(raw)
        known = {k: v for k, v in top.items() if k in _FIELDS}
        event = _EVENT.decode(_ENCODE.encode(known))
        extra = [(k, msgspec.json.decode(v)) for k, v in top.items() if k not in _FIELDS]
    except msgspec.DecodeError:
        return None
    metadata = dict(event.metadata)
    for key, value in extra:
        metadata.setdefault(key, _as_metadata_text(value))
    return msgspec.structs.replace(event, metadata=metadata)


def _authoritative(raw: bytes | str) -> Event:
    """The pydantic contract decides: an `EventError` with its reason, or a struct."""
    try:
        model = EventSchema.model_validate_json(raw)
    except ValidationError as exc:
        raise translate(exc, raw) from exc
    extra = model.model_extra or {}
    data = model.model_dump(exclude={"metadata", *extra})
    metadata = dict(model.metadata)
    for key, value in extra.items():
        metadata.setdefault(key, _as_metadata_text(value))
    data["metadata"] = metadata
    try:
        return msgspec.convert(data, Event)
    except msgspec.ValidationError as exc:  # pydantic's coercions went beyond the struct
        raise EventError("invalid_field", str(exc)) from exc


def parse_event(raw: bytes | str) -> Event:
    """Parse one message into an `Event`, or raise `EventError` with a reason code."""
    _check_size(raw)
    try:
        try:
            return _EVENT.decode(raw)
        except msgspec.ValidationError as exc:
            if str(exc).startswith("Object contains unknown field"):
                event = _with_extra_fields(raw)
                if event is not None:
                    return event
        except msgspec.DecodeError:
            pass
        return _authoritative(raw)
    except RecursionError as exc:  # (a try costs nothing in 3.11 until it raises)
        raise _too_deep() from exc


def _too_deep() -> EventError:
    # msgspec raises RecursionError, not a DecodeError, past ~1,000 levels of nesting
    # inside an object: one such message must be a dead letter, not a worker crash.
    return EventError("invalid_json", "nested too deeply to parse")


def parse_feedback(raw: bytes | str) -> FeedbackEvent:
    """Parse one ``vigil.feedback`` message, or raise `EventError` with a reason code."""
    _check_size(raw)
    try:
        return _parse_feedback(raw)
    except RecursionError as exc:
        raise _too_deep() from exc


def _parse_feedback(raw: bytes | str) -> FeedbackEvent:
    try:
        return _FEEDBACK.decode(raw)
    except msgspec.DecodeError:
        pass
    try:
        model = FeedbackEventSchema.model_validate_json(raw)
    except ValidationError as exc:
        raise translate(exc, raw) from exc
    try:
        return msgspec.convert(model.model_dump(), FeedbackEvent)
    except msgspec.ValidationError as exc:  # pydantic's coercions went beyond the struct
        raise EventError("invalid_field", str(exc)) from exc


def event_to_json(event: Event) -> bytes:
    """Serialize an event back to the wire format (used by the producer and tests)."""
    return _ENCODE.encode(event)


def request_json(request: Request) -> str:
    """The request as stored in ``events.request``: messages and params, as JSON text."""
    return _ENCODE.encode(request).decode()


def request_raw(request: Request) -> msgspec.Raw:
    """`request_json` as a JSON object to embed in an encoded row: the store reads an
    object into a String column as its text, which saves decoding it here and escaping
    every quote in it (``input_format_json_read_objects_as_strings``)."""
    return msgspec.Raw(_ENCODE.encode(request))


def messages_json(request: Request) -> str:
    """Just the messages, as JSON text (what identifies a prompt for the judge's cache)."""
    return _ENCODE.encode({"messages": request.messages}).decode()
