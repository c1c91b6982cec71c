"""Input formats: one raw record (a Kafka message, a line of a file) into contract events.

Each format is a function ``bytes -> Decoded``: the `vigil` contract passes through;
`otlp_proto` / `otlp_json` turn one OTLP trace export request (as the OpenTelemetry
Collector's Kafka exporter writes it) into one event per GenAI span; `openai` turns one
logged chat-completions request/response pair into one event. Decoding happens in the
source, before the pipeline, so the pipeline keeps its one contract: the events come out
as contract JSON bytes that `monitor.events.parse_event` reads like any other.

A record that cannot be decoded raises `EventError` (reason in `FORMAT_REJECT_REASONS`),
and the source dead-letters the record's original bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from monitor.events.formats.decoded import Decoded
from monitor.events.formats.openai import decode_openai
from monitor.events.formats.otlp import decode_otlp_json, decode_otlp_proto
from monitor.events.formats.vigil import decode_vigil

Format = Literal["vigil", "otlp_proto", "otlp_json", "openai"]

#: format name -> decoder of one raw record
FORMATS: dict[str, Callable[[bytes], Decoded]] = {
    "vigil": decode_vigil,
    "otlp_proto": decode_otlp_proto,
    "otlp_json": decode_otlp_json,
    "openai": decode_openai,
}

#: Dead-letter reasons of records refused by a format decoder (besides the contract's).
FORMAT_REJECT_REASONS = ("invalid_otlp", "invalid_openai_log")

__all__ = [
    "FORMATS",
    "FORMAT_REJECT_REASONS",
    "Decoded",
    "Format",
    "decode_openai",
    "decode_otlp_json",
    "decode_otlp_proto",
    "decode_vigil",
]
