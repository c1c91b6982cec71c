"""What a source hands the pipeline: raw messages, and what comes back for the ones that
did not parse."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """Bytes off the wire, with where they came from (for dead letters and tracing).

    A msgspec struct, made once per message: ~4x cheaper to build than a slots
    dataclass, and untracked by the garbage collector (it holds only bytes and strings),
    so a batch in flight adds nothing to each collection's work."""

    value: bytes
    source: str
    position: str


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A message that did not parse, with why; the DLQ topic gets its original bytes."""

    message: RawMessage
    reason: str
    detail: str
