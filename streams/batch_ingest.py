"""The batch ingest path for ``vigil.events`` (``kafka.ingest: batch``, the default).

Why: Faust's per-message stream machinery (Stream iteration, ``noack_take``'s buffer
processor, ``wait_first`` creating tasks per message, ``conductor.on_message``) costs
~190 us per message on a 2-core machine. Measured with ``bench/ingest.py --events 40000``:
raw aiokafka consume 159,767 events/s, the Faust agent end-to-end 3,959 events/s (0.02x
raw). That cap holds whatever the pipeline does, so events bypass the stream and are
fetched a whole batch at a time with aiokafka's ``getmany``.

What stays the same: this is a mode Service inside the Faust app (started and stopped
with it, so ``vigil worker`` is still one Faust worker), the feedback agent stays a Faust
agent, dead letters go out through the same `streams.dlq` code, and the pipeline is the
one `vigil replay` runs.

At-least-once:

- auto-commit is off; a batch's offsets (per partition, last stored offset + 1) are
  committed only after `Pipeline.commit` stored it and its dead letters are acknowledged
  on the DLQ topic. Batch N+1 is prepared (CPU) while batch N is written (the store
  releases the GIL), as in `monitor.replay`; writes and commits stay strictly in order.
- Rebalance: on revoke, the batch in flight is finished and committed before the
  partitions are given up. Offsets are committed only for partitions still assigned
  when the batch settles; a batch fetched for a partition that moved is still stored
  (harmless: the store is idempotent) and the new owner reads it again.
- Stop (SIGTERM): the loop stops fetching, the batch in flight settles and is committed,
  then the consumer leaves the group. Fetched but unprepared records are dropped and
  redelivered on the next start. A batch that cannot be stored (or dead-lettered) stops
  the worker without committing it.
- Unreachable broker: joining is retried with backoff, then one `BrokerError` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
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

Offsets = dict[TopicPartition, int]

#: Fetch sizes for aiokafka: 16 MiB per partition per request, room for a full batch of
#: typical events (its 1 MiB default held batches to ~1,400 events, and every small batch
#: costs a ClickHouse part). bench/ingest.py's raw baseline uses the same.
FETCH_OPTIONS = {
    "max_partition_fetch_bytes": 16 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
}


def _consumer(kafka: KafkaSettings) -> AIOKafkaConsumer:
    session_s = kafka.session_timeout_s
    options: dict[str, Any] = {}
    if kafka.security_protocol.endswith("SSL"):
        options["ssl_context"] = ssl.create_default_context()
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return AIOKafkaConsumer(
        bootstrap_servers=servers(kafka).split(","),
        client_id="vigil-ingest",
        group_id=kafka.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        security_protocol=kafka.security_protocol,
        session_timeout_ms=int(session_s * 1000),
        heartbeat_interval_ms=int(max(0.5, session_s / 5) * 1000),
        rebalance_timeout_ms=int(max(30.0, session_s * 2) * 1000),
        request_timeout_ms=int(max(40.0, session_s * 2) * 1000),
        max_poll_records=kafka.batch_max,
        **FETCH_OPTIONS,
        **options,
    )


def _batch(
    records: Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]],
) -> tuple[list[RawMessage], Offsets]:
    """One fetch as raw messages, and per partition the next offset to commit."""
    batch: list[RawMessage] = []
    offsets: Offsets = {}
    for tp, rows in records.items():
        if not rows:
            continue
        batch.extend(
            RawMessage(
                r.value if isinstance(r.value, bytes) else b"",
                tp.topic,
                f"{tp.partition}:{r.offset}",
            )
            for r in rows
        )
        offsets[tp] = rows[-1].offset + 1
    return batch, offsets


class _Revoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Finish (store and commit) the batch in flight before partitions are given up."""

    def __init__(self, ingest: BatchIngest) -> None:
        self._ingest = ingest

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._ingest.settle_in_flight(quiet=True)
            log.info("partitions revoked", extra={"partitions": _names(revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _names(assigned)})


def _names(tps: set[TopicPartition]) -> list[str]:
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
        self._consumer: AIOKafkaConsumer | None = None
        self._where = servers(kafka)

    async def on_start(self) -> None:
        # Our own task, not `add_future`: mode cancels its futures on stop, and the batch
        # in flight must finish instead.
        self._task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task})

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

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            consumer = await self._connect()
        except BrokerError as exc:
            self._handlers.fatal(exc)
            return
        if consumer is None:  # stopped while connecting
            return
        self._consumer = consumer
        try:
            await self._consume(consumer)
        except Exception as exc:  # StoreError after retries, DLQ send failure, BrokerError
            self._handlers.fatal(exc)
        finally:
            # Leaving the group is a courtesy (faster rebalance); if the broker is gone,
            # the session times out instead.
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _connect(self) -> AIOKafkaConsumer | None:
        """Start the consumer, retrying with backoff like `streams.admin.wait_for_broker`."""
        attempts = self._kafka.connect_retries + 1
        for attempt in range(1, attempts + 1):
            consumer = _consumer(self._kafka)
            try:
                with kafka_errors("joining the consumer group", self._where):
                    await consumer.start()
                    consumer.subscribe([self._kafka.events_topic], listener=_Revoke(self))
                return consumer
            except BrokerError as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                delay = retry_delay(exc, self._where, attempt, attempts)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return None
        return None

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        timeout_ms = int(self._kafka.batch_within_s * 1000)
        log.info(
            "batch ingest started",
            extra={"topic": self._kafka.events_topic, "group": self._kafka.group_id},
        )
        while not self._stopping.is_set():
            with kafka_errors("fetching events", self._where):
                records = await consumer.getmany(
                    timeout_ms=timeout_ms, max_records=self._kafka.batch_max
                )
            batch, offsets = _batch(records)
            if not batch:
                continue
            # CPU half now, while the previous batch is still being written.
            prepared = self._handlers.prepare_events(batch)
            await self.settle_in_flight()
            self._in_flight = asyncio.ensure_future(self._settle(consumer, prepared, offsets))
            await asyncio.sleep(0)  # let the commit hand its write to the thread pool
        await self.settle_in_flight()

    async def _settle(
        self, consumer: AIOKafkaConsumer, prepared: Prepared, offsets: Offsets
    ) -> None:
        """Store, dead-letter, then commit the offsets of partitions we still own."""
        dead = await self._handlers.commit_events(prepared)
        await send_dead_letters(self._dlq, dead)
        owned = consumer.assignment()
        mine = {tp: OffsetAndMetadata(o, "") for tp, o in offsets.items() if tp in owned}
        if len(mine) < len(offsets):
            log.info(
                "stored a batch of partitions no longer assigned; not committing them",
                extra={"partitions": _names(set(offsets) - set(mine))},
            )
        if not mine:
            return
        with kafka_errors("committing offsets", self._where):
            try:
                await consumer.commit(mine)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on (rebalance, lost session): the batch is stored, the
                # new owner reads it again and the store collapses the duplicates.
                log.warning(
                    "offset commit refused after a rebalance; batch will be redelivered",
                    extra={"error": type(exc).__name__},
                )
