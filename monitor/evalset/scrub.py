"""PII scrubbing for exported text: each match replaced by a typed placeholder.

A thin name for `monitor.checks.redact` in ``placeholder`` mode (the judge's redaction
uses the same function), so an exported eval set holds nothing the every-event PII check
would fire on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from monitor.checks.redact import PLACEHOLDERS, redact, redact_many

__all__ = ["PLACEHOLDERS", "scrub", "scrub_many"]


def scrub(text: str, counts: Counter[str] | None = None) -> str:
    """``text`` with every PII match replaced (``<EMAIL>``, ``<PHONE>``...); ``counts``
    (kind -> replacements) is updated when given."""
    return redact(text, "placeholder", counts)


def scrub_many(texts: Sequence[str]) -> tuple[list[str], list[Counter[str] | None]]:
    """`scrub` for each text, guarded over the whole batch; returns the texts and, per
    text, its replacements (None: none)."""
    return redact_many(texts, "placeholder")
