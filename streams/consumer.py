"""The batch ingest path for ``vigil.events`` (``kafka.ingest: batch``, the default).

Why: Faust's per-message stream machinery (Stream iteration, ``noack_take``'s buffer
processor, ``wait_first`` creating tasks per message, ``conductor.on_message``) costs
~190 us per message on a 2-core machine. Measured with ``bench/ingest.py --events 40000``:
raw aiokafka consume 159,767 events/s, the Faust agent end-to-end 3,959 events/s (0.02x
raw). That cap holds whatever the pipeline does, so events bypass the stream and are
fetched a whole batch at a time.

The client is confluent-kafka (librdkafka), not aiokafka: librdkafka fetches and decodes
record batches on its own threads, outside the GIL, where aiokafka decodes every record
in Python on the event loop, ~5 us per event on the thread that also runs the pipeline
(measured: aiokafka alone 190k events/s; that time cannot overlap with preparing a
batch). The consumer's blocking calls run on one dedicated thread.

What stays the same: this is a mode Service inside the Faust app (started and stopped
with it, so ``vigil worker`` is still one Faust worker), the feedback agent stays a Faust
agent, dead letters go out through the same `streams.dlq` code, and the pipeline is the
one `vigil replay` runs.

At-least-once:

- auto-commit is off; a batch's offsets (per partition, last stored offset + 1) are
  committed only after `Pipeline.commit` stored it and its dead letters are acknowledged
  on the DLQ topic. Batch N+1 is prepared (CPU) while batch N is written (the store
  releases the GIL), as in `monitor.replay`; writes and commits stay strictly in order.
- Rebalance: on revoke (a librdkafka callback, on the consumer's thread), the batch in
  flight is finished and committed before the partitions are given up. Offsets are
  committed only for partitions still assigned when the batch settles; a batch fetched
  for a partition that moved is still stored (harmless: the store is idempotent) and
  the new owner reads it again.
- Stop (SIGTERM): the loop stops fetching, the batch in flight settles and is committed,
  then the consumer leaves the group. Fetched but unprepared records are dropped and
  redelivered on the next start. A batch that cannot be stored (or dead-lettered) stops
  the worker without committing it.
- Unreachable broker: the first metadata request is retried with backoff, then one
  `BrokerError` line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from faust.types import TopicT
from mode import Service

from monitor.config import KafkaSettings
from monitor.errors import BrokerError
from monitor.pipeline import Prepared, RawMessage
from streams.admin import kafka_errors, retry_delay, servers
from streams.dlq import send_dead_letters

if TYPE_CHECKING:
    from streams.app import Handlers

log = logging.getLogger("vigil.ingest")

Offsets = dict[tuple[str, int], int]

#: Fetch sizes: 16 MiB per partition per request, room for a full batch of typical
#: events (aiokafka's 1 MiB default held batches to ~1,400 events, and every small batch
#: costs a ClickHouse part), 64 MiB per request. bench/ingest.py's raw baselines use the
#: same sizes (these are aiokafka's names; `_config` gives librdkafka the same values).
FETCH_OPTIONS = {
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
}

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


def consumer_config(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for ``kafka`` (auth, timeouts and fetch sizes included)."""
    session_s = kafka.session_timeout_s
    config: dict[str, Any] = {
        "bootstrap.servers": servers(kafka),
        "client.id": "vigil-ingest",
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(session_s * 1000),
        "heartbeat.interval.ms": int(max(0.5, session_s / 5) * 1000),
        "max.partition.fetch.bytes": FETCH_OPTIONS["max_partition_fetch_bytes"],
        "fetch.max.bytes": FETCH_OPTIONS["fetch_max_bytes"],
        # What librdkafka prefetches per partition ahead of `consume`: a few batches.
        "queued.max.messages.kbytes": 32 * 1024,
        # Once that queue is full, librdkafka postpones the partition's next fetch by this
        # much (default 1 s). The worker drains a full queue in well under that, so with
        # the default the queue ran dry every few batches and `consume` sat out the rest
        # of the backoff: stalls of 80-200 ms, a quarter of an end-to-end run. Measured
        # with bench-sized traffic: consume wait 3.5-6 -> ~1.6 us per event.
        "fetch.queue.backoff.ms": 10,
        "security.protocol": kafka.security_protocol,
        # Its log lines go to our logging (delivered on the consumer's thread).
        "logger": logging.getLogger("vigil.ingest.librdkafka"),
    }
    if kafka.security_protocol.endswith("SSL"):
        cafile = ssl.get_default_verify_paths().cafile
        config["ssl.ca.location"] = cafile or "probe"
    if kafka.security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = kafka.sasl_mechanism or "PLAIN"
        config["sasl.username"] = kafka.sasl_username
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    config.update(extra)
    return config


def _batch(messages: Sequence[Message], topic: str) -> tuple[list[RawMessage], Offsets]:
    """One fetch of ``topic`` (the one subscribed) as raw messages, and per partition the
    next offset to commit.

    A message carrying an error is not an event: a fatal client error stops the worker
    (`BrokerError`); anything else (a broker hiccup librdkafka retries itself) is logged.
    """
    batch: list[RawMessage] = []
    append = batch.append
    last: dict[int, int] = {}
    # Per message only what differs; this loop runs on the thread that prepares batches.
    for m in messages:
        if m.error() is not None:
            _fetch_error(m)
            continue
        partition, offset = m.partition(), m.offset()
        append(RawMessage(m.value() or b"", topic, f"{partition}:{offset}"))
        last[partition] = offset  # type: ignore[index,assignment]  # set on fetched messages
    return batch, {(topic, p): o + 1 for p, o in last.items()}


def _fetch_error(message: Message) -> None:
    error = message.error()
    if error is not None and error.fatal():
        raise BrokerError(f"Kafka consumer failed: {error.str()}")
    log.warning("Kafka fetch error", extra={"error": error.str() if error else "unknown"})


def _names(tps: Sequence[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in tps)


class BatchIngest(Service):
    """Consume ``kafka.events_topic`` in batches; commit what was stored, in order."""

    def __init__(
        self, kafka: KafkaSettings, handlers: Handlers, dlq: TopicT, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._kafka = kafka
        self._handlers = handlers
        self._dlq = dlq
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Task[None] | None = None
        # The batch in flight: resolved once it is stored and dead-lettered, and the
        # offsets to commit then (what a revoke callback needs to commit it itself).
        self._stored: asyncio.Future[Offsets] | None = None
        self._where = servers(kafka)
        # Every consumer call (consume, commit, assignment, close) runs here, one at a
        # time: the client does not take concurrent calls (a second one blocks until the
        # first returns), and rebalance callbacks then always come from this thread.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "vigil-kafka-consumer")
        self._loop: asyncio.AbstractEventLoop | None = None

    async def on_start(self) -> None:
        # Our own task, not `add_future`: mode cancels its futures on stop, and the batch
        # in flight must finish instead.
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task})
        self._thread.shutdown(wait=False)

    async def settle_in_flight(self, *, quiet: bool = False) -> None:
        """Wait for the batch being written (and its commit); ``quiet``: leave a failure
        to the loop, which sees it too and stops the worker."""
        task = self._in_flight
        if task is None:
            return
        if quiet:
            await asyncio.wait({task})
        else:
            await task

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        """Run a blocking consumer call on the consumer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- rebalance callbacks: librdkafka calls them on the consumer's thread ------------

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Store and commit the batch in flight before the partitions are given up. This
        # runs inside `consume`, on the consumer's thread, while the event loop awaits
        # that call: the loop finishes storing the batch, and the commit happens here
        # (the consumer's own thread is the only one that may call it).
        stored, loop = self._stored, self._loop
        if partitions and stored is not None and loop is not None:
            waited = asyncio.run_coroutine_threadsafe(_outcome(stored), loop)
            offsets = waited.result()
            if offsets is not None:  # None: storing failed; the loop stops the worker
                with contextlib.suppress(KafkaException):  # then redelivered
                    _commit_owned(consumer, offsets)
        if partitions:
            log.info("partitions revoked", extra={"partitions": _names(partitions)})

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _names(partitions)})

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            consumer = await self._connect()
        except BrokerError as exc:
            self._handlers.fatal(exc)
            return
        if consumer is None:  # stopped while connecting
            return
        try:
            await self._consume(consumer)
        except Exception as exc:  # StoreError after retries, DLQ send failure, BrokerError
            self._handlers.fatal(exc)
        finally:
            # Leaving the group is a courtesy (faster rebalance); if the broker is gone,
            # the session times out instead.
            with contextlib.suppress(Exception):
                await self._blocking(consumer.close)

    async def _connect(self) -> Consumer | None:
        """Make the consumer and check the broker answers, retrying with backoff like
        `streams.admin.wait_for_broker`; then join the group (on the first `consume`)."""
        attempts = self._kafka.connect_retries + 1
        topic = self._kafka.events_topic
        for attempt in range(1, attempts + 1):
            consumer = Consumer(consumer_config(self._kafka))
            try:
                with kafka_errors("joining the consumer group", self._where):
                    await self._blocking(consumer.list_topics, topic, self._kafka.session_timeout_s)
                consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
                return consumer
            except BrokerError as exc:
                with contextlib.suppress(Exception):
                    await self._blocking(consumer.close)
                delay = retry_delay(exc, self._where, attempt, attempts)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return None
        return None

    async def _consume(self, consumer: Consumer) -> None:
        batch_max, within_s = self._kafka.batch_max, self._kafka.batch_within_s
        log.info(
            "batch ingest started",
            extra={"topic": self._kafka.events_topic, "group": self._kafka.group_id},
        )
        while not self._stopping.is_set():
            with kafka_errors("fetching events", self._where):
                messages = await self._blocking(consumer.consume, batch_max, within_s)
            batch, offsets = _batch(messages, self._kafka.events_topic)
            if not batch:
                continue
            # CPU half now, while the previous batch is still being written.
            prepared = self._handlers.prepare_events(batch)
            await self.settle_in_flight()
            self._stored = asyncio.get_running_loop().create_future()
            self._in_flight = asyncio.ensure_future(
                self._settle(consumer, prepared, offsets, self._stored)
            )
            await asyncio.sleep(0)  # let the commit hand its write to the thread pool
        await self.settle_in_flight()

    async def _settle(
        self,
        consumer: Consumer,
        prepared: Prepared,
        offsets: Offsets,
        stored: asyncio.Future[Offsets],
    ) -> None:
        """Store, dead-letter, then commit the offsets of partitions we still own."""
        try:
            dead = await self._handlers.commit_events(prepared)
            await send_dead_letters(self._dlq, dead)
        except BaseException:
            stored.set_result({})  # nothing to commit; the loop sees the failure
            raise
        stored.set_result(offsets)
        try:
            with kafka_errors("committing offsets", self._where):
                await self._blocking(_commit_owned, consumer, offsets)
        except BrokerError as exc:
            cause = exc.__cause__
            code = cause.args[0].code() if isinstance(cause, KafkaException) else None
            if code not in _GROUP_MOVED:
                raise
            log.warning(
                "offset commit refused after a rebalance; batch will be redelivered",
                extra={"error": str(code)},
            )


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
