"""PII redaction with the checks' own detectors (`pii_spans`): typed placeholders or hashes.

One function for every place text leaves Vigil: exported eval sets (`monitor.evalset.scrub`)
and text sent to an external judge. The matches are exactly what the every-event PII check
flags, so redacted text holds nothing that check would fire on. A pass can leave a match
behind where two overlapped (the later one is cut, not removed), so each changed text is
scanned again until clean.

Modes: ``keep`` (text unchanged), ``placeholder`` (``<EMAIL>``, ``<PHONE>``...), ``hash``
(``<EMAIL:1a2b3c4d>``: the same value always gives the same tag, so a judge or a reader
can still tell two addresses apart without seeing either).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

from monitor.checks.pii import PII_KINDS, Span, pii_spans, pii_spans_many

RedactMode = Literal["keep", "placeholder", "hash"]
REDACT_MODES: tuple[RedactMode, ...] = ("keep", "placeholder", "hash")

PLACEHOLDERS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "card": "<CARD>",
    "iban": "<IBAN>",
    "national_id": "<NATIONAL_ID>",
}
assert set(PLACEHOLDERS) == set(PII_KINDS)
#: Rescans of a changed text; placeholders hold no '@' and no run of 9 digits (a hash tag
#: has 8 hex characters between '<...:' and '>'), so one is the most a real text needs.
_MAX_PASSES = 4
#: Hex characters of a value's hash in ``hash`` mode (8: no digit run a PII check flags).
_HASH_CHARS = 8

Tag = Callable[[str, str], str]


def _placeholder(kind: str, value: str) -> str:
    return PLACEHOLDERS[kind]


def _hashed(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PLACEHOLDERS[kind][:-1]}:{digest[:_HASH_CHARS]}>"


def _tagger(mode: RedactMode) -> Tag:
    return _hashed if mode == "hash" else _placeholder


def _replace(text: str, spans: Sequence[Span], counts: Counter[str], tag: Tag) -> str:
    parts = []
    at = 0
    for start, end, kind in spans:
        parts.append(text[at:start])
        parts.append(tag(kind, text[start:end]))
        counts[kind] += 1
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _rescan(text: str, counts: Counter[str], tag: Tag) -> str:
    for _ in range(_MAX_PASSES):
        spans = pii_spans(text)
        if not spans:
            break
        text = _replace(text, spans, counts, tag)
    return text


def redact(
    text: str, mode: RedactMode = "placeholder", counts: Counter[str] | None = None
) -> str:
    """``text`` with every PII match replaced as ``mode`` says (``keep``: unchanged);
    ``counts`` (kind -> replacements) is updated when given."""
    if mode == "keep":
        return text
    spans = pii_spans(text)
    if not spans:
        return text
    tally = counts if counts is not None else Counter()
    tag = _tagger(mode)
    return _rescan(_replace(text, spans, tally, tag), tally, tag)


def redact_many(
    texts: Sequence[str], mode: RedactMode = "placeholder"
) -> tuple[list[str], list[Counter[str] | None]]:
    """`redact` for each text, guarded over the whole batch (most texts hold no PII and
    cost one joined scan); returns the texts and, per text, its replacements (None: none)."""
    if mode == "keep":
        return list(texts), [None] * len(texts)
    tag = _tagger(mode)
    out: list[str] = []
    counts: list[Counter[str] | None] = []
    for text, spans in zip(texts, pii_spans_many(texts, PII_KINDS), strict=True):
        if not spans:
            out.append(text)
            counts.append(None)
            continue
        tally: Counter[str] = Counter()
        out.append(_rescan(_replace(text, spans, tally, tag), tally, tag))
        counts.append(tally)
    return out, counts
