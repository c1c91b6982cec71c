"""The event contract as the pipeline holds it: frozen msgspec structs, one per part.

Field meanings are documented on the pydantic models in `monitor.events.schema`, the
authoritative contract; change a field there and here together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from monitor.events.schema import MAX_TOKENS

# gc=False on every struct below: they are created per event and hold only strings,
# numbers and JSON containers, so they can never be part of a reference cycle; not
# tracking them spares the garbage collector ~100k objects a second (measured ~10% of
# replay throughput).
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]
_Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
_Rating = Literal[-1, 0, 1]


class Message(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One chat message of the request."""

    # kw_only lets the defaulted role come first, so stored JSON reads {"role", "content"}.
    role: str = "user"
    content: str | list[dict[str, Any]]

    @property
    def text(self) -> str:
        """The text; for an OpenAI-style list of parts, its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(str(p["text"]) for p in self.content if "text" in p)


class Request(msgspec.Struct, frozen=True, gc=False):
    """What the monitored service was asked."""

    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    params: dict[str, Any] = {}


class Response(msgspec.Struct, frozen=True, gc=False):
    """What the monitored service answered."""

    content: str
    finish_reason: str | None = None
    latency_ms: _NonNegative | None = None
    prompt_tokens: _Tokens | None = None
    completion_tokens: _Tokens | None = None


class ShadowResponse(msgspec.Struct, frozen=True, gc=False):
    """A second answer to the same request (baseline or candidate), for pairwise judging."""

    content: str
    model: str = ""
    model_version: str = ""


class Feedback(msgspec.Struct, frozen=True, gc=False):
    """A user's verdict on the answer; may come inline or later on ``vigil.feedback``."""

    rating: _Rating
    comment: str | None = None


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One request/response pair of the monitored service (fields documented in
    `monitor.events.schema.EventSchema`)."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    model: Annotated[str, msgspec.Meta(min_length=1)]
    request: Request
    response: Response
    app: str = ""
    route: str = ""
    model_version: str = ""
    feedback: Feedback | None = None
    shadow: ShadowResponse | None = None
    metadata: dict[str, str] = {}

    @property
    def content_captured(self) -> bool:
        """False when the source recorded no text (an OpenTelemetry span without captured
        content says so with metadata ``content_captured: "false"``): its prompt and answer
        are empty placeholders, and checks and scorers that read text do not apply."""
        return self.metadata.get("content_captured") != "false"

    @property
    def prompt(self) -> str:
        """The last user message: what drift and the judge look at."""
        for message in reversed(self.request.messages):
            if message.role == "user":
                return message.text
        return self.request.messages[-1].text


class FeedbackEvent(msgspec.Struct, frozen=True):
    """Late feedback on topic ``vigil.feedback``, joined to its event by ``event_id``."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    rating: _Rating
    comment: str | None = None
