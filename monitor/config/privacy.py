"""What Vigil keeps of the monitored text: PII redaction before storage, raw-text retention."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from monitor.config.base import Section

StoreRedaction = Literal["keep", "placeholder", "hash"]

#: Redaction modes from the least to the most hiding: ``hash`` keeps which values are
#: equal, ``placeholder`` keeps only the kind.
_STRICTNESS: dict[str, int] = {"keep": 0, "hash": 1, "placeholder": 2}


def stricter(one: StoreRedaction, other: StoreRedaction) -> StoreRedaction:
    """The mode of the two that hides more (``placeholder`` > ``hash`` > ``keep``)."""
    return one if _STRICTNESS[one] >= _STRICTNESS[other] else other


class PrivacySettings(Section):
    """What of the monitored text reaches the store, and how long it stays there.

    The every-event checks always run on the raw text (the PII check still flags an
    event, and the flag is stored); the scorer stages get the raw event too, as before,
    the judge with its own ``judge.redact_pii``, never weaker than ``redact_pii`` here."""

    redact_pii: StoreRedaction = "keep"
    """PII in every free text an event stores (messages of ``request`` and so the
    ``prompt``, system and tool text included, request params' strings, ``response``,
    ``shadow_response``, ``metadata`` values, the feedback comment; late feedback
    comments too), found by the PII check's own detectors, before anything is written:
    keep (stored as is), placeholder (<EMAIL>, <PHONE>, <CARD>, <IBAN>, <NATIONAL_ID>),
    hash (<EMAIL:1a2b3c4d>: an unsalted short hash, so equal values stay equal but a
    guessable value is not hidden). Dead letters: their message, if valid UTF-8, and
    their detail are redacted as text; other bytes are kept as they came. Also the
    least the judge is sent: when this is on, ``judge.redact_pii`` resolving to keep
    (or hash, under placeholder) is raised to this mode."""
    raw_text_days: Annotated[int, Field(ge=1)] | None = None
    """Retention of the raw text columns of their own (events: prompt, request, response,
    shadow_response, metadata; feedback: comment; dead_letters: raw_b64, by the time
    received), by event time like ``store.ttl_days``
    and at most as long: ClickHouse empties those columns after this many days while
    the rest of the row (ids, checks, scores, tokens) stays until ``store.ttl_days``.
    None: the text lives as long as its row. Applied when a table is created: a table
    created before keeps its columns' TTL until altered (``ALTER TABLE ... MODIFY COLUMN
    prompt String TTL toDateTime(ts) + INTERVAL N DAY``, see README)."""
