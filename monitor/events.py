"""The event contract (topic ``vigil.events``): the pydantic models, parsing and validation.

One message is one JSON object describing one request/response pair of the monitored
service. Required: ``event_id``, ``ts``, ``model``, ``request.messages`` (non-empty) and
``response.content``; everything else is optional. Top-level fields this contract does
not name are kept in ``metadata`` (JSON-encoded when they are not strings), never dropped.

`parse_event` is the one entry point for bytes off the wire. It never raises anything but
`EventError`, whose ``reason`` is a short code stored with the bytes in the dead-letter
queue, so a bad message is explained and kept, and the worker goes on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from monitor.errors import EventError

#: Larger messages are rejected before parsing: a runaway producer must not exhaust memory.
MAX_EVENT_BYTES = 1_000_000

REJECT_REASONS = (
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class Message(_Model):
    """One chat message of the request."""

    role: str = "user"
    """Who spoke: system, user, assistant or tool."""
    content: str | list[dict[str, Any]]
    """The text, or an OpenAI-style list of parts (their text parts are what counts)."""

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(str(p["text"]) for p in self.content if "text" in p)


class Request(_Model):
    """What the monitored service was asked."""

    messages: Annotated[list[Message], Field(min_length=1)]
    """The chat messages, oldest first; at least one."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Generation parameters (temperature, max_tokens...) as the service sent them."""


class Response(_Model):
    """What the monitored service answered."""

    content: str
    """The answer text (may be empty: that is a finding, not a parse error)."""
    finish_reason: str | None = None
    """Why generation stopped: stop, length, content_filter, tool_calls..."""
    latency_ms: Annotated[float, Field(ge=0)] | None = None
    """End-to-end latency of the call in milliseconds."""
    prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    """Tokens in the prompt, as counted by the service."""
    completion_tokens: Annotated[int, Field(ge=0)] | None = None
    """Tokens in the answer, as counted by the service."""


class ShadowResponse(_Model):
    """A second answer to the same request (baseline or candidate model), for pairwise judging."""

    content: str
    """The other model's answer."""
    model: str = ""
    """Which model produced it."""
    model_version: str = ""
    """Which checkpoint produced it."""


class Feedback(_Model):
    """A user's verdict on the answer; may come inline or later on ``vigil.feedback``."""

    rating: Literal[-1, 0, 1]
    """-1 bad, 0 neutral, 1 good."""
    comment: str | None = None
    """Free text from the user, if any."""


class Event(_Model):
    """One request/response pair of the monitored service."""

    # extra="allow" collects unknown top-level fields so `parse_event` can move them into
    # metadata; numbers in metadata are read as strings ("any string map").
    model_config = ConfigDict(
        extra="allow", frozen=True, use_attribute_docstrings=True, coerce_numbers_to_str=True
    )

    event_id: Annotated[str, Field(min_length=1, max_length=256)]
    """Unique id; the idempotency key everywhere downstream."""
    ts: AwareDatetime
    """Event time (RFC 3339 with an offset); all windows and timers use it."""
    model: Annotated[str, Field(min_length=1)]
    """The served model's name."""
    request: Request
    """What was asked."""
    response: Response
    """What was answered."""
    app: str = ""
    """The application that made the call."""
    route: str = ""
    """The application's route or feature (sampling and alerts can split by it)."""
    model_version: str = ""
    """The checkpoint or deployment version of the model."""
    feedback: Feedback | None = None
    """Inline user feedback, when the service has it at logging time."""
    shadow: ShadowResponse | None = None
    """A second model's answer to the same request, for pairwise judging."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free string map; unknown top-level fields land here too."""

    @property
    def prompt(self) -> str:
        """The last user message: what drift and the judge look at."""
        for message in reversed(self.request.messages):
            if message.role == "user":
                return message.text
        return self.request.messages[-1].text


class FeedbackEvent(_Model):
    """Late feedback on topic ``vigil.feedback``, joined to its event by ``event_id``."""

    event_id: Annotated[str, Field(min_length=1, max_length=256)]
    """The event the feedback is about."""
    ts: AwareDatetime
    """When the feedback was given."""
    rating: Literal[-1, 0, 1]
    """-1 bad, 0 neutral, 1 good."""
    comment: str | None = None
    """Free text from the user, if any."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _check_size(raw: bytes | str) -> None:
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{len(raw)} bytes exceeds {MAX_EVENT_BYTES}")


_JSON_ERRORS = {"json_invalid", "json_type"}


def _translate(exc: ValidationError, raw: bytes | str) -> EventError:
    first = exc.errors(include_url=False, include_input=False)[0]
    kind = first["type"]
    where = ".".join(str(part) for part in first["loc"]) or "<root>"
    if kind in _JSON_ERRORS:
        detail = str(first.get("ctx", {}).get("error", first["msg"]))
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return EventError("invalid_utf8", f"byte {bad.start}: {bad.reason}")
        reason = "invalid_utf8" if "unicode" in detail.lower() else "invalid_json"
        return EventError(reason, detail)
    if kind in {"model_type", "model_attributes_type"} and not first["loc"]:
        return EventError("not_an_object", "top-level JSON is not an object")
    reason = "missing_field" if kind == "missing" else "invalid_field"
    return EventError(reason, f"{where}: {first['msg']}")


def parse_event(raw: bytes | str) -> Event:
    """Parse one message into an `Event`, or raise `EventError` with a reason code.

    The common case is one pass of pydantic-core over the bytes (no Python callbacks);
    only events with unknown top-level fields take a second, slower step.
    """
    _check_size(raw)
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        raise _translate(exc, raw) from exc
    extra = event.model_extra
    if extra:
        metadata = dict(event.metadata)
        for key, value in extra.items():
            metadata.setdefault(key, value if isinstance(value, str) else _dumps(value))
        fields = {name: getattr(event, name) for name in Event.model_fields}
        fields["metadata"] = metadata
        event = Event.model_construct(**fields)
    return event


def parse_feedback(raw: bytes | str) -> FeedbackEvent:
    """Parse one ``vigil.feedback`` message, or raise `EventError` with a reason code."""
    _check_size(raw)
    try:
        return FeedbackEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise _translate(exc, raw) from exc


def event_to_json(event: Event) -> bytes:
    """Serialize an event back to the wire format (used by the producer and tests)."""
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))
