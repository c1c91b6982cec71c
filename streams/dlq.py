"""The dead-letter topic: shared by the events ingest (`streams.consumer`) and the feedback agent.

A message that did not parse goes to ``kafka.dlq_topic`` with its original bytes and
headers saying why and where it came from. Its source offset may be committed only once
the broker has the dead letter, so `send_dead_letters` returns after every send is
acknowledged (the Faust producer runs with acks=all).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faust.types import TopicT

from monitor.pipeline import DeadLetter


def dlq_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
    partition, _, offset = dead.message.position.partition(":")
    return [
        ("vigil.reason", dead.reason.encode()),
        ("vigil.detail", dead.detail[:500].encode("utf-8", "replace")),
        ("vigil.source.topic", dead.message.source.encode()),
        ("vigil.source.partition", partition.encode()),
        ("vigil.source.offset", offset.encode()),
    ]


async def send_dead_letters(dlq: TopicT, dead: Sequence[DeadLetter]) -> None:
    """Put ``dead`` on the DLQ topic; return once the broker acknowledged every record."""
    if not dead:
        return
    sent = [await dlq.send(value=d.message.value, headers=dlq_headers(d), force=True) for d in dead]
    await asyncio.gather(*sent)  # each resolves once the broker has the record (acks=all)
