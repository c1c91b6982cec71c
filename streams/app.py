"""The Faust app: three topics, the feedback agent, and the events ingest. Kafka wiring only.

Events are read by one of two paths (``kafka.ingest``): ``batch`` (default), a mode
Service in this app that fetches whole batches with confluent-kafka (`streams.consumer`),
or ``stream``, the Faust ``noack_take`` agent below. Faust's per-message machinery costs
~190 us per message (measured: 3,959 events/s end-to-end vs 159,767 raw), fine for
feedback, far too slow for events. Agents and the service hand raw bytes to a `Handlers`
object (the worker's adapter around `monitor.pipeline.pipeline.Pipeline`); they hold no SQL and
no statistics. Stream-path details:

At-least-once, from the faust-streaming 0.15.3 source (streams.py, transport/consumer.py):

- ``Stream.take()`` and ``take_events()`` ack the buffered events in the ``finally`` of
  their generator. That runs when the agent asks for the next batch (good), but also when
  the generator is closed: ``Stream.on_stop`` calls ``aclose()`` on every buffering
  generator, and an agent that raised drops its generator. Either way a batch that was
  never stored gets acked, and the consumer commits acked offsets on stop. So ``take()``
  acks too early for us.
- ``noack_take()`` yields the same batches (as events) and never acks; we ack each event
  ourselves once `Handlers.events` returned, i.e. once the batch is durably stored and
  its dead letters are on the DLQ topic. The consumer commits only the longest run of
  consecutive acked offsets, so an unstored batch also holds back every later commit.
- Shutdown order (mode stops children in reverse start order): the consumer's fetcher
  stops first, then agents, then the consumer, which commits what was acked. The batch in
  flight is shielded from the agents' cancellation so it finishes, is acked, and is
  committed by that last commit. Events still buffered are not acked: redelivered on the
  next start and collapsed by the store's idempotent keys. ``stream_wait_empty`` is off
  because it would wait forever for events that a failed store never lets us ack.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust
from faust.streams import Stream
from faust.types import EventT, TopicT

from monitor.config import KafkaSettings, Settings
from monitor.pipeline import DeadLetter, Prepared, RawMessage
from streams.admin import faust_group, servers
from streams.consumer import BatchIngest
from streams.dlq import send_dead_letters

log = logging.getLogger("vigil.streams")


class Handlers(Protocol):
    """What the agents call; implemented over the pipeline by `streams.worker`."""

    async def events(self, batch: Sequence[RawMessage]) -> list[DeadLetter]:
        """Store a batch of event messages durably; return the ones that did not parse."""

    def prepare_events(self, batch: Sequence[RawMessage]) -> Prepared:
        """The CPU half of `events` (batch path: overlapped with the previous write)."""

    async def commit_events(self, prepared: Prepared) -> list[DeadLetter]:
        """The I/O half of `events`: store durably; return the messages that did not parse."""

    async def feedback(self, batch: Sequence[RawMessage]) -> list[DeadLetter]:
        """Store a batch of late-feedback messages durably; return the ones that did not parse."""

    def fatal(self, exc: BaseException) -> None:
        """A batch could not be stored even after retries: stop the worker (no ack)."""


Handle = Callable[[Sequence[RawMessage]], Awaitable[list[DeadLetter]]]


def _raw(event: EventT[Any]) -> RawMessage:
    message = event.message
    value = event.value
    return RawMessage(
        value if isinstance(value, bytes) else b"" if value is None else bytes(value),
        message.topic,
        f"{message.partition}:{message.offset}",
    )


async def _settle(
    stream: Stream[Any], dlq: TopicT, handle: Handle, events: Sequence[EventT[Any]]
) -> None:
    """Store the batch, put its dead letters on the DLQ, then (only then) ack its events."""
    await send_dead_letters(dlq, await handle([_raw(event) for event in events]))
    for event in events:
        await stream.ack(event)


def _agent(dlq: TopicT, handle: Handle, handlers: Handlers, kafka: KafkaSettings) -> Any:
    async def consume(stream: Stream[Any]) -> None:
        async for events in stream.noack_take(kafka.batch_max, within=kafka.batch_within_s):
            task = asyncio.ensure_future(_settle(stream, dlq, handle, events))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Stopping: finish the batch in flight so its offsets get committed.
                if not task.done():
                    await asyncio.wait({task})
                raise
            except Exception as exc:  # StoreError after retries, DLQ send failure
                handlers.fatal(exc)
                return

    return consume


def _credentials(kafka: KafkaSettings) -> Any:
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if kafka.security_protocol.endswith("SSL") else None
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


@dataclass
class VigilApp:
    """The Faust app, and the batch ingest service the worker starts and stops with it."""

    app: faust.App
    ingest: BatchIngest | None


def build_app(settings: Settings, handlers: Handlers, datadir: Path) -> VigilApp:
    """The worker's Faust app: topics ``events``/``feedback``/``dlq``, the feedback agent,
    and the events ingest of ``kafka.ingest`` (a service for batch, an agent for stream)."""
    kafka = settings.kafka
    session_s = kafka.session_timeout_s
    app = faust.App(
        faust_group(kafka),
        broker=[f"kafka://{server}" for server in servers(kafka).split(",")],
        broker_credentials=_credentials(kafka),
        datadir=str(datadir),
        store="memory://",  # durable state lives in ClickHouse, never in Faust tables
        web_enabled=False,
        topic_allow_declare=False,  # `streams.admin.ensure_topics` creates them
        topic_disable_leader=True,
        stream_wait_empty=False,  # see the module docstring
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(0.5, session_s / 5),
        broker_request_timeout=max(30.0, session_s * 2),
        broker_rebalance_timeout=max(30.0, session_s * 2),
        broker_commit_interval=1.0,
        broker_max_poll_records=max(500, kafka.batch_max),
        stream_buffer_maxsize=max(4096, kafka.batch_max * 2),
        producer_acks=-1,
    )

    def topic(name: str) -> TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    events, feedback, dlq = (
        topic(kafka.events_topic),
        topic(kafka.feedback_topic),
        topic(kafka.dlq_topic),
    )
    app.agent(feedback, name="vigil-feedback")(_agent(dlq, handlers.feedback, handlers, kafka))
    if kafka.ingest == "stream":
        app.agent(events, name="vigil-ingest")(_agent(dlq, handlers.events, handlers, kafka))
        return VigilApp(app, None)
    return VigilApp(app, BatchIngest(kafka, handlers, dlq, loop=app.loop, beacon=app.beacon))
