"""PII scrubbing for exported text: each match replaced by a typed placeholder.

The matches are exactly what the every-event PII check flags (`monitor.checks.pii`,
`pii_spans`), so an exported eval set holds nothing that check would fire on. A pass can
leave a match behind where two overlapped (the later one is cut, not removed), so each
changed text is scanned again until clean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from monitor.checks.pii import PII_KINDS, Span, pii_spans, pii_spans_many

PLACEHOLDERS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "card": "<CARD>",
    "iban": "<IBAN>",
    "national_id": "<NATIONAL_ID>",
}
assert set(PLACEHOLDERS) == set(PII_KINDS)
#: Rescans of a changed text; placeholders hold no digit or '@', so one is the most a
#: real text needs.
_MAX_PASSES = 4


def _replace(text: str, spans: Sequence[Span], counts: Counter[str]) -> str:
    parts = []
    at = 0
    for start, end, kind in spans:
        parts.append(text[at:start])
        parts.append(PLACEHOLDERS[kind])
        counts[kind] += 1
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _rescan(text: str, counts: Counter[str]) -> str:
    for _ in range(_MAX_PASSES):
        spans = pii_spans(text)
        if not spans:
            break
        text = _replace(text, spans, counts)
    return text


def scrub(text: str, counts: Counter[str] | None = None) -> str:
    """``text`` with every PII match replaced (``<EMAIL>``, ``<PHONE>``...); ``counts``
    (kind -> replacements) is updated when given."""
    spans = pii_spans(text)
    if not spans:
        return text
    tally = counts if counts is not None else Counter()
    return _rescan(_replace(text, spans, tally), tally)


def scrub_many(texts: Sequence[str]) -> tuple[list[str], list[Counter[str] | None]]:
    """`scrub` for each text, guarded over the whole batch (most texts hold no PII and
    cost one joined scan); returns the texts and, per text, its replacements (None: none)."""
    out: list[str] = []
    counts: list[Counter[str] | None] = []
    for text, spans in zip(texts, pii_spans_many(texts, PII_KINDS), strict=True):
        if not spans:
            out.append(text)
            counts.append(None)
            continue
        tally: Counter[str] = Counter()
        out.append(_rescan(_replace(text, spans, tally), tally))
        counts.append(tally)
    return out, counts
