"""What a format decoder makes of one raw record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Decoded:
    """The contract events found in one record (JSON bytes each; zero or many), and how
    many parts of the record were skipped as not being LLM calls (non-GenAI spans)."""

    events: list[bytes] = field(default_factory=list)
    skipped: int = 0
