"""The event contract as pydantic models: the published schema and the authoritative validator.

`monitor.events.parse` decodes the common case with msgspec into plain structs, several times
faster than pydantic; anything that decoder refuses comes here, so these models decide
what is valid, how loose input is coerced (numbers in metadata, "812" for a number...) and
which reason a rejection carries. tests/test_events.py checks that the two agree on
generated inputs: whatever the fast decoder accepts, these models accept with equal values.

Change a field here and in `monitor.events.parse` together.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from monitor.errors import EventError

#: Token counts are stored as UInt32; a larger count is an invalid field, not a failed insert.
MAX_TOKENS = 2**32 - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class MessageSchema(_Model):
    """One chat message of the request."""

    role: str = "user"
    """Who spoke: system, user, assistant or tool."""
    content: str | list[dict[str, Any]]
    """The text, or an OpenAI-style list of parts (their text parts are what counts)."""


class RequestSchema(_Model):
    """What the monitored service was asked."""

    messages: Annotated[list[MessageSchema], Field(min_length=1)]
    """The chat messages, oldest first; at least one."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Generation parameters (temperature, max_tokens...) as the service sent them."""


class ResponseSchema(_Model):
    """What the monitored service answered."""

    content: str
    """The answer text (may be empty: that is a finding, not a parse error)."""
    finish_reason: str | None = None
    """Why generation stopped: stop, length, content_filter, tool_calls..."""
    latency_ms: Annotated[float, Field(ge=0)] | None = None
    """End-to-end latency of the call in milliseconds."""
    prompt_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = None
    """Tokens in the prompt, as counted by the service."""
    completion_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = None
    """Tokens in the answer, as counted by the service."""


class ShadowSchema(_Model):
    """A second answer to the same request (baseline or candidate model), for pairwise judging."""

    content: str
    """The other model's answer."""
    model: str = ""
    """Which model produced it."""
    model_version: str = ""
    """Which checkpoint produced it."""


class FeedbackSchema(_Model):
    """A user's verdict on the answer; may come inline or later on ``vigil.feedback``."""

    rating: Literal[-1, 0, 1]
    """-1 bad, 0 neutral, 1 good."""
    comment: str | None = None
    """Free text from the user, if any."""


class EventSchema(_Model):
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
    request: RequestSchema
    """What was asked."""
    response: ResponseSchema
    """What was answered."""
    app: str = ""
    """The application that made the call."""
    route: str = ""
    """The application's route or feature (sampling and alerts can split by it)."""
    model_version: str = ""
    """The checkpoint or deployment version of the model."""
    feedback: FeedbackSchema | None = None
    """Inline user feedback, when the service has it at logging time."""
    shadow: ShadowSchema | None = None
    """A second model's answer to the same request, for pairwise judging."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free string map; unknown top-level fields land here too."""


class FeedbackEventSchema(_Model):
    """Late feedback on topic ``vigil.feedback``, joined to its event by ``event_id``."""

    event_id: Annotated[str, Field(min_length=1, max_length=256)]
    """The event the feedback is about."""
    ts: AwareDatetime
    """When the feedback was given."""
    rating: Literal[-1, 0, 1]
    """-1 bad, 0 neutral, 1 good."""
    comment: str | None = None
    """Free text from the user, if any."""


_JSON_ERRORS = {"json_invalid", "json_type"}


def translate(exc: ValidationError, raw: bytes | str) -> EventError:
    """The pydantic error as an `EventError` with one of `REJECT_REASONS`."""
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
