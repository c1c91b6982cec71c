"""The dead-letter topic: shared by the events ingest (`streams.consumer`) and the feedback agent.

A message the pipeline refused (it did not parse, or its event time is out of range) goes
to ``kafka.dlq_topic`` with its original bytes and headers saying why and where it came
from. Its source offset may be committed only once
the broker has the dead letter, so `send_dead_letters` returns after every send is
acknowledged (the Faust producer runs with acks=all).

A dead letter always fits, so one message cannot stop the worker:

- the payload is at most ``kafka.dlq_max_bytes`` (default 256 KiB, at most 900,000). A
  longer message goes as its first that many bytes, with the headers ``vigil.truncated:
  1``, ``vigil.original_bytes`` (its length) and ``vigil.sha256`` (hex, of the whole
  message), so it can be matched with its ``dead_letters`` row, which keeps every byte;
- every header is bounded: the detail is cut to `DETAIL_MAX_BYTES`, the rest are a
  reason code, a topic name and numbers. The whole record stays under the producer's
  ``max_request_size`` (`streams.client_config.DLQ_MAX_REQUEST_BYTES`);
- a broker with a smaller cap than ``kafka.dlq_max_bytes`` refuses the record as too
  large: it is sent again with no payload at all (``vigil.truncated`` and the two other
  headers say so), and a warning names it.

Any other failure (the broker is gone, the topic is missing, or the resend is refused
too) is systemic, not the message's: after the producer's own retries it raises one
`BrokerError` naming the message, the batch is not committed, and the worker stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from faust.types import TopicT

from monitor.errors import BrokerError
from monitor.pipeline import DeadLetter

log = logging.getLogger("vigil.dlq")

#: The ``vigil.detail`` header is cut to this many bytes (UTF-8, whole characters).
DETAIL_MAX_BYTES = 500

Headers = list[tuple[str, bytes]]
Record = tuple[bytes, Headers]


def dlq_headers(dead: DeadLetter) -> Headers:
    partition, _, offset = dead.message.position.partition(":")
    detail = dead.detail.encode("utf-8", "replace")[:DETAIL_MAX_BYTES]
    return [
        ("vigil.reason", dead.reason.encode()),
        ("vigil.detail", detail.decode("utf-8", "ignore").encode()),  # no cut character
        ("vigil.source.topic", dead.message.source.encode()),
        ("vigil.source.partition", partition.encode()),
        ("vigil.source.offset", offset.encode()),
    ]


def dlq_record(dead: DeadLetter, max_bytes: int) -> Record:
    """The value and headers of ``dead`` on the DLQ topic: at most ``max_bytes`` of its
    original bytes, and when that is not all of them, headers saying so."""
    value = dead.message.value
    headers = dlq_headers(dead)
    if len(value) <= max_bytes:
        return value, headers
    headers += [
        ("vigil.truncated", b"1"),
        ("vigil.original_bytes", str(len(value)).encode()),
        ("vigil.sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    return value[:max_bytes], headers


async def send_dead_letters(dlq: TopicT, dead: Sequence[DeadLetter], max_bytes: int) -> None:
    """Put ``dead`` on the DLQ topic; return once the broker acknowledged every record.

    Raises `BrokerError` when one cannot be sent even without its payload."""
    if not dead:
        return
    failed = await _send_all(dlq, [dlq_record(d, max_bytes) for d in dead])
    _raise_first(dlq, dead, {i: exc for i, exc in failed.items() if not _too_large(exc)})
    retry = sorted(failed)
    for i in retry:
        log.warning(
            "dead letter refused as too large; sending it without its payload "
            "(the dead_letters table has the bytes)",
            extra={
                "source": dead[i].message.source,
                "position": dead[i].message.position,
                "bytes": len(dead[i].message.value),
                "error": _one_line(failed[i]),
            },
        )
    again = await _send_all(dlq, [dlq_record(dead[i], 0) for i in retry])
    _raise_first(dlq, [dead[i] for i in retry], again)


async def _send_all(dlq: TopicT, records: Sequence[Record]) -> dict[int, BaseException]:
    """Send ``records`` in order and wait for every acknowledgement; the failures by index."""
    failed: dict[int, BaseException] = {}
    queued: list[tuple[int, Awaitable[Any]]] = []
    for i, (value, headers) in enumerate(records):
        try:
            queued.append((i, await dlq.send(value=value, headers=headers, force=True)))
        except Exception as exc:  # refused before it was queued (ProducerSendError)
            failed[i] = exc
    # Each resolves once the broker has the record (acks=all), or with why it has not.
    results = await asyncio.gather(*(sent for _, sent in queued), return_exceptions=True)
    for (i, _), result in zip(queued, results, strict=True):
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException):
            failed[i] = result
    return failed


def _too_large(exc: BaseException | None) -> bool:
    """Whether the producer or the broker refused a record for its size."""
    while exc is not None:
        if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
            return True
        exc = exc.__cause__
    return False


def _raise_first(dlq: TopicT, dead: Sequence[DeadLetter], failed: dict[int, BaseException]) -> None:
    """One `BrokerError` line for the first of ``failed`` (indexes into ``dead``), if any."""
    if not failed:
        return
    i = min(failed)
    message, exc = dead[i].message, failed[i]
    raise BrokerError(
        f"dead-letter send to {dlq.get_topic_name()} failed for {message.source} "
        f"{message.position} ({len(message.value)} bytes, {dead[i].reason}): {_one_line(exc)}"
    ) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


class _ShortSendErrors(logging.Filter):
    """Faust logs a failed send with the whole pending message, payload included (up to
    ``kafka.dlq_max_bytes`` on one line); `send_dead_letters` reports it, so keep the
    start of that line only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("_on_published error"):
            record.msg, record.args = record.getMessage()[:300] + " ...", ()
        return True


logging.getLogger("faust.topics").addFilter(_ShortSendErrors())
