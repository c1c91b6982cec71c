"""Duplicate event ids: the rule, and the window of ids it is applied over.

The rule, the same in replay and live: **the first message seen with an event id wins.**

- A later message with the same id and the same bytes is a redelivery (a producer retry,
  a batch read again after a rebalance): it is skipped, counted as ``duplicates`` in
  the run summary, and nothing is written for it (the first one's rows stand).
- A later message with the same id and different bytes is a conflict: it is
  dead-lettered with reason ``duplicate_id`` (its bytes kept, so nothing is lost) and the
  first one's rows stand. Without this the store's key would keep whichever came last,
  and two versions whose ``ts`` fall in different months would both survive ``FINAL``
  (the key is per partition).

The window is the last ``events.duplicate_window`` ids this process accepted (memory:
about 100 bytes per id). A conflict with an event older than the window, or stored
before a restart, is not seen here: there the store's key decides (the later write
wins within a month). Kafka redelivers only identical bytes, so a restart cannot turn
a redelivery into a conflict.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

#: What `DuplicateIds.classify` says about one message.
NEW, SAME, CONFLICT = 0, 1, 2

REASON = "duplicate_id"


class DuplicateIds:
    """The last ``window`` accepted event ids with a fingerprint of their bytes."""

    def __init__(self, window: int) -> None:
        self.window = window
        # id -> hash of the message bytes. A dict keeps insertion order, so the oldest id
        # is the first key: eviction is O(1). The hash is Python's own (CPython caches it
        # on the bytes object): the window lives in this process only, so a per-process
        # salt does no harm, and it costs nothing per event.
        self._seen: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def classify(self, ids: Sequence[str], values: Sequence[bytes]) -> Iterator[int]:
        """For each (id, bytes) in order, NEW, SAME or CONFLICT; NEW ids are remembered
        (so a duplicate inside the same batch is caught too)."""
        seen = self._seen
        window = self.window
        for event_id, value in zip(ids, values, strict=True):
            fingerprint = hash(value)
            known = seen.get(event_id)
            if known is None:
                seen[event_id] = fingerprint
                if len(seen) > window:
                    del seen[next(iter(seen))]
                yield NEW
            elif known == fingerprint:
                yield SAME
            else:
                yield CONFLICT
