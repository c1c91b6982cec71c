"""The native contract: the record is the event; `parse_event` validates it later."""

from __future__ import annotations

from monitor.events.formats.decoded import Decoded


def decode_vigil(raw: bytes) -> Decoded:
    return Decoded([raw])
