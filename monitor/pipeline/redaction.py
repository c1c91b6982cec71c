"""PII redaction of what the pipeline stores (``privacy.redact_pii``).

Applied to rows only: the pipeline runs the every-event checks on the raw events first
(so the PII check flags and stores what it found) and hands the scorer stages the raw
events, as before; only the copies written to the store are redacted. The detectors are
the PII check's own (`monitor.checks.redact`), so no stored text holds anything that check
would flag.

Every free text an event carries is redacted: each message's text (string content or
the ``text`` of content parts: user, system and tool messages alike, hence ``prompt``
too), the strings inside request params, the response, the shadow response, the inline
feedback comment and the metadata values. Ids, route, model names and metadata keys are
identifiers, not free text, and are kept. A batch's texts go through one `redact_many`,
whose joined-text guards rule out most texts in one scan.

Dead letters did not parse (or were refused), so they cannot be redacted field by field:
a message that is valid UTF-8 is redacted as one text (JSON stays JSON: no placeholder
holds a quote or a backslash) and so is the detail (a parse error can quote the input);
a message that is not valid UTF-8 is kept as it came, since rewriting bytes we cannot
read would destroy the evidence without knowing it removed anything. The DLQ topic, the
producer's own channel for fixing and resending, gets the original bytes either way.
"""

from __future__ import annotations

import base64
from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import compress
from typing import Any

import msgspec

from monitor.checks.redact import RedactMode, redact, redact_many
from monitor.events import Event, FeedbackEvent, Request
from monitor.store.base import Row, Rows

Sub = Callable[[str], str]


class StoreRedaction:
    """Redacts events and rows on their way to the store, in one ``mode``."""

    def __init__(self, mode: RedactMode) -> None:
        self.mode = mode
        self.on = mode != "keep"

    def events(self, events: list[Event]) -> list[Event]:
        """The events as they are to be stored: ``events`` itself when off; else a list
        holding each event that has PII as a redacted copy and the others as they are."""
        if not self.on or not events:
            return events
        texts: list[str] = []
        ends: list[int] = []  # where each event's texts end in ``texts``
        for event in events:
            _collect(event, texts)
            ends.append(len(texts))
        redacted, changed = redact_many(texts, self.mode)
        out = list(events)
        # Most texts hold no PII (``changed`` None): find the few that did in C, then
        # their events by bisection, instead of walking every event's slice.
        for i in sorted({bisect_right(ends, at) for at in compress(range(len(texts)), changed)}):
            start = ends[i - 1] if i else 0
            out[i] = _rebuild(events[i], _in_turn(redacted[start : ends[i]]))
        return out

    def feedback(self, feedback: FeedbackEvent) -> FeedbackEvent:
        """Late feedback as it is to be stored (its comment redacted)."""
        if not self.on or not feedback.comment:
            return feedback
        return msgspec.structs.replace(feedback, comment=redact(feedback.comment, self.mode))

    def tables(self, tables: Mapping[str, Rows]) -> Mapping[str, Rows]:
        """``tables`` with their dead letters redacted (see the module docstring)."""
        letters = tables.get("dead_letters")
        if not self.on or not letters or not isinstance(letters, list):
            return tables
        return {**tables, "dead_letters": [self._dead_letter(row) for row in letters]}

    def _dead_letter(self, row: Row) -> Row:
        try:
            text = base64.b64decode(row["raw_b64"]).decode("utf-8")
        except UnicodeDecodeError:
            raw_b64 = row["raw_b64"]  # unreadable bytes: kept as they came
        else:
            raw_b64 = base64.b64encode(redact(text, self.mode).encode("utf-8")).decode()
        return {**row, "detail": redact(row["detail"], self.mode), "raw_b64": raw_b64}


def _in_turn(replacements: list[str]) -> Sub:
    """A `Sub` that answers each call with the next of ``replacements`` (the texts come
    in `_collect` order, so the next one is the redacted form of the text passed)."""
    it = iter(replacements)
    return lambda _text: next(it)


def _strings(value: Any, out: list[str]) -> None:
    """Append every string inside a JSON value (dict values and list items, in order)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def _collect(event: Event, out: list[str]) -> None:
    """Append the free texts of ``event``, in the order `_rebuild` replaces them."""
    for message in event.request.messages:
        content = message.content
        if isinstance(content, str):
            out.append(content)
        else:
            out.extend(p["text"] for p in content if isinstance(p.get("text"), str))
    params = event.request.params
    if params:  # most hold numbers only, but a string (a user id, a tool) may be free text
        _strings(params, out)
    out.append(event.response.content)
    if event.shadow is not None:
        out.append(event.shadow.content)
    if event.feedback is not None and event.feedback.comment:
        out.append(event.feedback.comment)
    if event.metadata:
        out.extend(event.metadata.values())


def _content(content: str | list[dict[str, Any]], sub: Sub) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return sub(content)
    return [
        {**part, "text": sub(part["text"])} if isinstance(part.get("text"), str) else part
        for part in content
    ]


def _substituted(value: Any, sub: Sub) -> Any:
    if isinstance(value, str):
        return sub(value)
    if isinstance(value, dict):
        return {key: _substituted(item, sub) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, sub) for item in value]
    return value


def _rebuild(event: Event, sub: Sub) -> Event:
    """``event`` with each text of `_collect` replaced by the next value ``sub`` returns."""
    replace = msgspec.structs.replace
    messages = [replace(m, content=_content(m.content, sub)) for m in event.request.messages]
    request = Request(messages, _substituted(event.request.params, sub))
    response = replace(event.response, content=sub(event.response.content))
    shadow = event.shadow
    if shadow is not None:
        shadow = replace(shadow, content=sub(shadow.content))
    feedback = event.feedback
    if feedback is not None and feedback.comment:
        feedback = replace(feedback, comment=sub(feedback.comment))
    metadata = {key: sub(value) for key, value in event.metadata.items()}
    return replace(
        event,
        request=request,
        response=response,
        shadow=shadow,
        feedback=feedback,
        metadata=metadata,
    )
