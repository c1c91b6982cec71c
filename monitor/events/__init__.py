"""The event contract: what one message on ``vigil.events`` (or ``vigil.feedback``) is.

`parse_event` / `parse_feedback` turn bytes off the wire into the frozen structs of
`monitor.events.model`, or raise `EventError` with a reason code for the dead-letter
queue. `monitor.events.schema` holds the pydantic models: the published, documented
contract and the authority on what is valid.
"""

from monitor.events.model import (
    Event,
    Feedback,
    FeedbackEvent,
    Message,
    Request,
    Response,
    ShadowResponse,
)
from monitor.events.parse import (
    MAX_EVENT_BYTES,
    REJECT_REASONS,
    event_to_json,
    messages_json,
    parse_event,
    parse_feedback,
    request_json,
    request_raw,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "REJECT_REASONS",
    "Event",
    "Feedback",
    "FeedbackEvent",
    "Message",
    "Request",
    "Response",
    "ShadowResponse",
    "event_to_json",
    "messages_json",
    "parse_event",
    "parse_feedback",
    "request_json",
    "request_raw",
]
