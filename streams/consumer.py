"""The events topic as a `Source` (`monitor.pipeline.source`): what `vigil worker` ingests.

Events bypass Faust's stream: its per-message machinery costs ~190 us per message
(measured with ``bench/ingest.py --events 40000`` on 2 cores: 3,959 events/s end to end,
0.02x a raw consume), so they are fetched a whole batch at a time.

The client is confluent-kafka (librdkafka), not aiokafka: librdkafka fetches and decodes
record batches on its own threads, outside the GIL, where aiokafka decodes every record
in Python on the event loop, ~5 us per event on the thread that also runs the pipeline
(measured: aiokafka alone 190k events/s; that time cannot overlap with preparing a
batch). The consumer's blocking calls run on one dedicated thread.

`KafkaSource` is driven by `monitor.pipeline.driver.drive`, the loop `vigil replay` runs
too; `streams.app` runs it as a service of the Faust app (started and stopped with it, so
`vigil worker` is one Faust worker). Dead letters go out through `streams.dlq`.

At-least-once:

- auto-commit is off; a batch's offsets (per partition, last stored offset + 1) are
  committed only after the pipeline stored it and its dead letters are acknowledged on
  the DLQ topic (`KafkaSource.acknowledge`). The driver prepares batch N+1 (CPU) while
  batch N is written (the store releases the GIL); writes and commits stay strictly in
  order.
- Rebalance: on revoke (a librdkafka callback, on the consumer's thread), the batch in
  flight is finished and committed before the partitions are given up. Offsets are
  committed only for partitions still assigned when the batch settles; a batch fetched
  for a partition that moved is still stored (harmless: the store is idempotent) and
  the new owner reads it again.
- Stop (`KafkaSource.stop`, on SIGTERM): fetching stops, the batch in flight settles and
  is committed, then `close` leaves the group. Fetched but unprepared records are dropped
  and redelivered on the next start. A batch that cannot be stored (or dead-lettered)
  stops the worker without committing it.
- Unreachable broker: `connect` retries the first metadata request with backoff, then
  raises one `BrokerError` line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from faust.types import TopicT

from monitor.config import KafkaSettings
from monitor.errors import BrokerError
from monitor.ops import BrokerState
from monitor.pipeline.source import Batch, DeadLetter, RawMessage
from monitor.replay import decode_messages
from streams.admin import kafka_errors, retry_delay
from streams.client_config import consumer_config, servers
from streams.dlq import send_dead_letters

log = logging.getLogger("vigil.ingest")

Offsets = dict[tuple[str, int], int]

#: Commit errors that mean the group moved on (a rebalance, a lost session): the batch
#: is stored, the partition's new owner reads it again and the store collapses it.
_GROUP_MOVED = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._STATE,  # librdkafka's own code: no longer a group member
    }
)


@dataclass(slots=True)
class Fetched:
    """Where a fetched batch stands: the offsets to commit once it is stored."""

    offsets: Offsets
    stored: asyncio.Future[Offsets]
    """Resolved once the batch is stored and dead-lettered (to ``offsets``), or once it
    never will be (to ``{}``): what the revoke callback waits for."""


class KafkaSource:
    """``kafka.events_topic`` in batches, committed once stored, in order.

    `connect` first, `close` last (after the driver returned); `stop` at any time.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        dlq: TopicT,
        *,
        broker: BrokerState | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._kafka = kafka
        self._dlq = dlq
        # What /readyz and /metrics know of the broker; `client_options` are the
        # callbacks that keep it current (`streams.consumer_stats`).
        self._broker = broker
        self._client_options = dict(client_options or {})
        self._where = servers(kafka)
        # topic -> input format; records of other formats become contract messages here
        self._formats = {**kafka.input_topics, kafka.events_topic: "vigil"}
        self._stopping = asyncio.Event()
        self._consumer: Consumer | None = None
        # The last batch handed out. While `consume` runs it is the only one that can be
        # in flight (the driver settles each batch before it asks for the next but one),
        # so it is the one a revoke callback must settle.
        self._last: Fetched | None = None
        # Every consumer call (consume, commit, assignment, close) runs here, one at a
        # time: the client does not take concurrent calls (a second one blocks until the
        # first returns), and rebalance callbacks then always come from this thread.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "vigil-kafka-consumer")
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        """Stop fetching (`batches` ends after the fetch in progress) or connecting."""
        self._stopping.set()

    async def connect(self) -> bool:
        """Make the consumer and check the broker answers, retrying with backoff like
        `streams.admin.wait_for_broker`; it joins the group on the first fetch. False
        when stopped while connecting."""
        self._loop = asyncio.get_running_loop()
        attempts = self._kafka.connect_retries + 1
        topic = self._kafka.events_topic
        topics = [topic, *(t for t in self._kafka.input_topics if t != topic)]
        for attempt in range(1, attempts + 1):
            consumer = Consumer(consumer_config(self._kafka, **self._client_options))
            try:
                with kafka_errors("joining the consumer group", self._where):
                    await self._blocking(consumer.list_topics, topic, self._kafka.session_timeout_s)
                consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
                self._consumer = consumer
                if self._broker is not None:
                    self._broker.connected()
                return True
            except BrokerError as exc:
                with contextlib.suppress(Exception):
                    await self._blocking(consumer.close)
                delay = retry_delay(exc, self._where, attempt, attempts)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return False
        return False

    async def close(self) -> None:
        """Leave the group: a courtesy (a faster rebalance); if the broker is gone, the
        session times out instead."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await self._blocking(consumer.close)
        self._thread.shutdown(wait=False)

    async def batches(self) -> AsyncGenerator[Batch[Fetched], None]:
        consumer = self._connected()
        batch_max, within_s = self._kafka.batch_max, self._kafka.batch_within_s
        topic = self._kafka.events_topic
        log.info("batch ingest started", extra={"topic": topic, "group": self._kafka.group_id})
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            with kafka_errors("fetching events", self._where):
                messages = await self._blocking(consumer.consume, batch_max, within_s)
            raw, offsets, skipped = _batch(messages, self._formats)
            if not offsets:  # an empty fetch (or only fetch errors)
                continue
            # A fetch whose records all decoded to no event (only non-GenAI spans) is
            # still a batch: its offsets are committed in order like any other's, instead
            # of waiting for a later fetch of the same partitions, which may never come.
            fetched = self._last = Fetched(offsets, loop.create_future())
            try:
                yield Batch(raw, fetched, skipped)
            except GeneratorExit:
                # Closed before this batch was acknowledged (the driver failed elsewhere):
                # it is never committed, and a revoke callback must not wait for it.
                if not fetched.stored.done():
                    fetched.stored.set_result({})
                raise

    async def acknowledge(
        self, batch: Batch[Fetched], stored: Awaitable[Sequence[DeadLetter]]
    ) -> None:
        """Store, dead-letter, then commit the offsets of partitions we still own."""
        fetched = batch.position
        try:
            await send_dead_letters(self._dlq, await stored, self._kafka.dlq_max_bytes)
        except BaseException:
            fetched.stored.set_result({})  # nothing to commit; the driver sees the failure
            raise
        fetched.stored.set_result(fetched.offsets)
        try:
            with kafka_errors("committing offsets", self._where):
                await self._blocking(_commit_owned, self._connected(), fetched.offsets)
        except BrokerError as exc:
            cause = exc.__cause__
            code = cause.args[0].code() if isinstance(cause, KafkaException) else None
            if code not in _GROUP_MOVED:
                raise
            log.warning(
                "offset commit refused after a rebalance; batch will be redelivered",
                extra={"error": str(code)},
            )

    def _connected(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSource used before connect() or after close()")
        return self._consumer

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        """Run a blocking consumer call on the consumer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- rebalance callbacks: librdkafka calls them on the consumer's thread ------------

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Store and commit the batch in flight before the partitions are given up. This
        # runs inside `consume` (or `close`), on the consumer's thread, while the event
        # loop awaits that call: the loop finishes storing the batch, and the commit
        # happens here (the consumer's own thread is the only one that may call it).
        last, loop = self._last, self._loop
        if partitions and last is not None and loop is not None:
            waited = asyncio.run_coroutine_threadsafe(_outcome(last.stored), loop)
            offsets = waited.result()
            if offsets is not None:  # None: storing failed; the worker stops
                with contextlib.suppress(KafkaException):  # then redelivered
                    _commit_owned(consumer, offsets)
        if partitions:
            log.info("partitions revoked", extra={"partitions": _names(partitions)})

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _names(partitions)})


def _batch(
    messages: Sequence[Message], formats: Mapping[str, str]
) -> tuple[list[RawMessage], Offsets, int]:
    """One fetch as raw contract messages (records of topics in another input format
    decoded by `monitor.replay.decode_messages`), per partition the next offset to
    commit, and how many non-GenAI spans were skipped.

    A message carrying an error is not an event: a fatal client error stops the worker
    (`BrokerError`); anything else (a broker hiccup librdkafka retries itself) is logged.
    """
    batch: list[RawMessage] = []
    other: dict[str, list[RawMessage]] = {}
    append = batch.append
    last: dict[tuple[str, int], int] = {}
    # Per message only what differs; this loop runs on the thread that prepares batches.
    for m in messages:
        if m.error() is not None:
            _fetch_error(m)
            continue
        topic, partition, offset = m.topic() or "", m.partition(), m.offset()
        raw = RawMessage(m.value() or b"", topic, f"{partition}:{offset}")
        if formats.get(topic, "vigil") == "vigil":
            append(raw)
        else:
            other.setdefault(topic, []).append(raw)
        last[(topic, partition)] = offset  # type: ignore[index,assignment]  # set on fetched messages
    skipped = 0
    for topic, records in other.items():
        decoded, skipped_here = decode_messages(formats[topic], records)
        batch.extend(decoded)
        skipped += skipped_here
    return batch, {tp: o + 1 for tp, o in last.items()}, skipped


def _fetch_error(message: Message) -> None:
    error = message.error()
    if error is not None and error.fatal():
        raise BrokerError(f"Kafka consumer failed: {error.str()}")
    log.warning("Kafka fetch error", extra={"error": error.str() if error else "unknown"})


def _names(tps: Sequence[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in tps)


def _commit_owned(consumer: Consumer, offsets: Offsets) -> None:
    """Commit ``offsets`` for the partitions still assigned (on the consumer's thread)."""
    owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    mine = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in owned]
    if len(mine) < len(offsets):
        log.info(
            "stored a batch of partitions no longer assigned; not committing them",
            extra={"partitions": sorted(f"{t}:{p}" for t, p in set(offsets) - owned)},
        )
    if mine:
        consumer.commit(offsets=mine, asynchronous=False)


async def _outcome(stored: asyncio.Future[Offsets]) -> Offsets | None:
    """The offsets of a stored batch, or None when storing it failed."""
    return (await stored) or None
