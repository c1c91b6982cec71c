"""PII patterns in responses: email, phone, payment card (Luhn), IBAN (mod 97), national id.

Built for the every-event path: each pattern is guarded by a cheap test ('@' for email,
one search for a long digit run for the others) so most text is scanned by C code once,
and numeric candidates are found by one regex and classified afterwards, instead of
running one backtracking regex per kind over the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monitor.checks.scan import Joined

PII_KINDS = ("email", "phone", "card", "iban", "national_id")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A run of digits with the separators people type in numbers: spaces, dashes, dots, parens.
_NUMBER_RUN = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{7,22}\d(?![\w])")
_SSN = re.compile(r"^(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# Every numeric kind (and every IBAN we know of) contains a run of at least 9 digits with
# separators; one cheap search for such a run rules most text out before the full scans.
_NUMERIC_HINT = re.compile(r"\d[\d .()-]{7,}\d")
# The same search for ASCII text, where \d is exactly [0-9]: re skips ahead to a character
# of an explicit set much faster than it tests the Unicode digit category at each position.
_NUMERIC_HINT_ASCII = re.compile(r"[0-9][0-9 .()-]{7,}[0-9]")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97."""
    text = candidate.replace(" ", "")
    if not 15 <= len(text) <= 34:
        return False
    rearranged = text[4:] + text[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _classify_number(run: str) -> str | None:
    stripped = run.strip()
    if _SSN.match(stripped):
        return "national_id"
    digits = "".join(ch for ch in stripped if ch.isdigit())
    n = len(digits)
    separators_ok = all(ch in " -" or ch.isdigit() for ch in stripped)
    if 13 <= n <= 19 and separators_ok and luhn_ok(digits):
        return "card"
    has_phone_shape = (
        stripped.startswith("+") or "(" in stripped or "-" in stripped or " " in stripped
    )
    if 10 <= n <= 15 and has_phone_shape:
        return "phone"
    return None


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[str]:
    """The PII kinds present in ``text`` (sorted, each once)."""
    wanted: frozenset[str] = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
    found: set[str] = set()
    if "email" in wanted and "@" in text and _EMAIL.search(text):
        found.add("email")
    numeric_hint = _NUMERIC_HINT_ASCII if text.isascii() else _NUMERIC_HINT  # isascii: O(1)
    if not numeric_hint.search(text):
        return sorted(found)  # every other kind needs a long run of digits
    # Digits inside a valid IBAN are part of it, not a phone or card number.
    iban_spans = [m.span() for m in _IBAN.finditer(text) if iban_ok(m.group(0))]
    if iban_spans and "iban" in wanted:
        found.add("iban")
    numeric = wanted & {"phone", "card", "national_id"}
    if numeric:
        for match in _NUMBER_RUN.finditer(text):
            if any(start <= match.start() < end for start, end in iban_spans):
                continue
            kind = _classify_number(match.group(0))
            if kind in numeric:
                found.add(kind)
    return sorted(found)


def find_pii_many(texts: Sequence[str], kinds: Iterable[str] = PII_KINDS) -> list[list[str]]:
    """`find_pii` for each of ``texts``, with the guards run once over the whole batch.

    Only texts that pass a guard (an '@' for email, a long digit run for the rest) are
    scanned in full, by `find_pii` itself, so each result is exactly ``find_pii(text)``.
    """
    wanted: frozenset[str] = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
    hits = [False] * len(texts)
    if not texts or not wanted:
        return [[] for _ in texts]
    joined = Joined(texts)
    if "email" in wanted:
        joined.containing(("@",), hits)
    # One pattern for the batch: on ASCII text the two hints find the same runs.
    joined.matching(_NUMERIC_HINT_ASCII if joined.text.isascii() else _NUMERIC_HINT, hits)
    return [find_pii(text, wanted) if hit else [] for text, hit in zip(texts, hits, strict=True)]


#: A PII match: where it starts and ends in the text, and its kind.
Span = tuple[int, int, str]


def pii_spans(text: str, kinds: Iterable[str] = PII_KINDS) -> list[Span]:
    """Where `find_pii` finds each kind: ``(start, end, kind)`` sorted by start.

    The same patterns, guards and classification as `find_pii`, so the kinds found are
    exactly ``find_pii(text, kinds)`` and scrubbing replaces what the checks flag. Spans
    never overlap: where two would (an email holding a digit run), the earlier one is
    kept, and a scrubber re-checks its output for what that may leave."""
    wanted: frozenset[str] = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
    spans: list[Span] = []
    if "email" in wanted and "@" in text:
        spans.extend((m.start(), m.end(), "email") for m in _EMAIL.finditer(text))
    numeric_hint = _NUMERIC_HINT_ASCII if text.isascii() else _NUMERIC_HINT
    if numeric_hint.search(text):
        iban_spans = [m.span() for m in _IBAN.finditer(text) if iban_ok(m.group(0))]
        if "iban" in wanted:
            spans.extend((start, end, "iban") for start, end in iban_spans)
        if wanted & {"phone", "card", "national_id"}:
            for match in _NUMBER_RUN.finditer(text):
                if any(start <= match.start() < end for start, end in iban_spans):
                    continue
                kind = _classify_number(match.group(0))
                if kind in wanted:
                    spans.append((match.start(), match.end(), kind))
    if len(spans) < 2:
        return spans
    # Keep the earlier (longer on a tie) of two overlapping spans, so each character is
    # replaced at most once.
    spans.sort(key=lambda s: (s[0], -s[1]))
    kept = [spans[0]]
    for span in spans[1:]:
        if span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def pii_spans_many(texts: Sequence[str], kinds: Iterable[str] = PII_KINDS) -> list[list[Span]]:
    """`pii_spans` for each of ``texts``, guarded over the whole batch like `find_pii_many`."""
    wanted: frozenset[str] = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
    if not texts or not wanted:
        return [[] for _ in texts]
    hits = [False] * len(texts)
    joined = Joined(texts)
    if "email" in wanted:
        joined.containing(("@",), hits)
    joined.matching(_NUMERIC_HINT_ASCII if joined.text.isascii() else _NUMERIC_HINT, hits)
    return [pii_spans(text, wanted) if hit else [] for text, hit in zip(texts, hits, strict=True)]
