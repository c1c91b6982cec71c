"""What a source hands the pipeline: batches of raw messages, and how a stored batch is
acknowledged. `monitor.pipeline.driver.drive` runs any `Source` (a JSONL file in
`monitor.replay`, the Kafka events topic in `streams.consumer`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import msgspec

Position = TypeVar("Position")


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """Bytes off the wire, with where they came from (for dead letters and tracing).

    A msgspec struct, made once per message: ~4x cheaper to build than a slots
    dataclass, and untracked by the garbage collector (it holds only bytes and strings),
    so a batch in flight adds nothing to each collection's work."""

    value: bytes
    source: str
    position: str
    refused: tuple[str, str] | None = None
    """(reason, detail) when the source's input format could not decode ``value`` (the
    record's original bytes): the pipeline dead-letters it as it is."""


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A message that did not parse, with why; the DLQ topic gets its original bytes."""

    message: RawMessage
    reason: str
    detail: str


@dataclass(slots=True, frozen=True)
class Batch(Generic[Position]):
    """Messages to store together, and what the source needs to acknowledge them."""

    messages: list[RawMessage]
    position: Position
    """Kafka: the offsets to commit once stored; a file: nothing."""
    skipped_spans: int = 0
    """Non-GenAI spans its OTLP records held, skipped (`Summary.skipped_spans`). A batch
    may hold no message at all, only skipped spans: it still goes through the pipeline,
    so that its position is acknowledged in order."""


class Source(Protocol[Position]):
    """Where batches come from, and what happens once one is stored."""

    def batches(self) -> AsyncGenerator[Batch[Position], None]:
        """The batches, in order; ends at the end of the input or once the source stops.
        The driver closes it (``aclose``) when it fails. When it ends, its last batch may
        still be in flight: what `acknowledge` needs must outlive it (`drive` returns only
        once every batch is acknowledged)."""
        ...

    async def acknowledge(
        self, batch: Batch[Position], stored: Awaitable[Sequence[DeadLetter]]
    ) -> None:
        """Await ``stored`` (the pipeline writing ``batch``; it gives the messages that
        did not parse, already stored as dead letters), then make the batch done at the
        source: Kafka sends the dead letters to the DLQ topic and commits the offsets of
        the partitions it still owns; a file has nothing to do.

        The source awaits the write itself, instead of being called once it is done, so
        that it sees the write end either way: Kafka's revoke callback waits for exactly
        that moment, and must not wait forever for a write that failed."""
        ...
