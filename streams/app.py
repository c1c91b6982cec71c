"""The Faust app: three topics, the feedback agent, and the events ingest. Kafka wiring only.

Faust is the application: its lifecycle (`vigil worker` is one Faust worker), the DLQ
producer, and the late-feedback agent, in consumer group `faust_group`. Events do not go
through a Faust stream: `EventsIngest`, a service of this app, runs
`monitor.pipeline.driver.drive` over a `streams.consumer.KafkaSource` (why: see there).
Both hand raw bytes to the `Pipeline`, which holds all the SQL and the statistics.

Feedback agent, at-least-once, from the faust-streaming 0.15.3 source (streams.py,
transport/consumer.py):

- ``Stream.take()`` and ``take_events()`` ack the buffered events in the ``finally`` of
  their generator. That runs when the agent asks for the next batch (good), but also when
  the generator is closed: ``Stream.on_stop`` calls ``aclose()`` on every buffering
  generator, and an agent that raised drops its generator. Either way a batch that was
  never stored gets acked, and the consumer commits acked offsets on stop. So ``take()``
  acks too early for us.
- ``noack_take()`` yields the same batches (as events) and never acks; we ack each event
  ourselves once `Pipeline.process_feedback` returned, i.e. once the batch is durably
  stored, and once its dead letters are on the DLQ topic. The consumer commits only the
  longest run of consecutive acked offsets, so an unstored batch also holds back every
  later commit.
- Shutdown order (mode stops children in reverse start order): the consumer's fetcher
  stops first, then agents, then the consumer, which commits what was acked. The batch in
  flight is shielded from the agents' cancellation so it finishes, is acked, and is
  committed by that last commit. Events still buffered are not acked: redelivered on the
  next start and collapsed by the store's idempotent keys. ``stream_wait_empty`` is off
  because it would wait forever for events that a failed store never lets us ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.streams import Stream
from faust.types import EventT, TopicT
from mode import Service

from monitor.config import KafkaSettings, Settings
from monitor.ops import BrokerState, OpsEndpoints
from monitor.pipeline import Pipeline, RawMessage
from monitor.pipeline.driver import drive
from streams.client_config import faust_group, faust_options
from streams.consumer import KafkaSource
from streams.consumer_stats import stats_callbacks
from streams.dlq import send_dead_letters
from streams.ops_web import add_ops_views, web_options

#: Called when a batch cannot be stored (or dead-lettered) even after retries, or the
#: broker fails for good: the worker stops without committing that batch.
Fatal = Callable[[BaseException], None]


class EventsIngest(Service):
    """The events topic through the pipeline, started and stopped with the Faust app."""

    def __init__(
        self, source: KafkaSource, pipeline: Pipeline, fatal: Fatal, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._source = source
        self._pipeline = pipeline
        self._fatal = fatal
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        # Our own task, not `add_future`: mode cancels its futures on stop, and the batch
        # in flight must finish instead.
        self._task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        self._source.stop()
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        try:
            if await self._source.connect():
                await drive(self._pipeline, self._source)
        except Exception as exc:  # StoreError after retries, DLQ send failure, BrokerError
            self._fatal(exc)
        finally:
            await self._source.close()


def _raw(event: EventT[Any]) -> RawMessage:
    message = event.message
    value = event.value
    return RawMessage(
        value if isinstance(value, bytes) else b"" if value is None else bytes(value),
        message.topic,
        f"{message.partition}:{message.offset}",
    )


async def _settle(
    stream: Stream[Any],
    dlq: TopicT,
    pipeline: Pipeline,
    events: Sequence[EventT[Any]],
    dlq_max_bytes: int,
) -> None:
    """Store the batch, put its dead letters on the DLQ, then (only then) ack its events."""
    dead = await pipeline.process_feedback([_raw(event) for event in events])
    await send_dead_letters(dlq, dead, dlq_max_bytes)
    for event in events:
        await stream.ack(event)


def _feedback_agent(dlq: TopicT, pipeline: Pipeline, fatal: Fatal, kafka: KafkaSettings) -> Any:
    async def consume(stream: Stream[Any]) -> None:
        async for events in stream.noack_take(kafka.batch_max, within=kafka.batch_within_s):
            settled = _settle(stream, dlq, pipeline, events, kafka.dlq_max_bytes)
            task = asyncio.ensure_future(settled)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Stopping: finish the batch in flight so its offsets get committed.
                if not task.done():
                    await asyncio.wait({task})
                raise
            except Exception as exc:  # StoreError after retries, DLQ send failure
                fatal(exc)
                return

    return consume


@dataclass
class VigilApp:
    """The Faust app, and the events ingest the worker starts and stops with it."""

    app: faust.App
    ingest: EventsIngest
    ops: OpsEndpoints
    """What /healthz, /readyz and /metrics answer (served when ``ops.enabled``)."""


def build_app(settings: Settings, pipeline: Pipeline, fatal: Fatal, datadir: Path) -> VigilApp:
    """The worker's Faust app: topics ``events``/``feedback``/``dlq``, the feedback agent,
    the events ingest service, all over ``pipeline``, and the operations endpoints."""
    kafka = settings.kafka
    app = faust.App(
        faust_group(kafka),
        **faust_options(kafka),
        datadir=str(datadir),
        store="memory://",  # durable state lives in ClickHouse, never in Faust tables
        **web_options(settings.ops),
        topic_allow_declare=False,  # `streams.admin.ensure_topics` creates them
        topic_disable_leader=True,
        stream_wait_empty=False,  # see the module docstring
        stream_buffer_maxsize=max(4096, kafka.batch_max * 2),
    )

    def topic(name: str) -> TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    feedback, dlq = topic(kafka.feedback_topic), topic(kafka.dlq_topic)
    app.agent(feedback, name="vigil-feedback")(_feedback_agent(dlq, pipeline, fatal, kafka))
    broker = BrokerState()
    endpoints = OpsEndpoints(pipeline, broker)
    add_ops_views(app, settings.ops, endpoints)
    options = stats_callbacks(broker, settings.ops)
    source = KafkaSource(kafka, dlq, broker=broker, client_options=options)
    ingest = EventsIngest(source, pipeline, fatal, loop=app.loop, beacon=app.beacon)
    return VigilApp(app, ingest, endpoints)
