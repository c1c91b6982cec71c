"""Kafka administration with kafka-python: reachability, topic creation, committed offsets.

Every kafka-python, aiokafka and confluent-kafka exception that leaves this package is
translated here (`kafka_errors`) into `BrokerError`, with a message that names the servers
and says what failed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from monitor.config import KafkaSettings, Settings
from monitor.errors import BrokerError
from streams.client_config import CLIENT_ID, faust_group, kafka_python_options, servers

log = logging.getLogger("vigil.kafka")


@contextlib.contextmanager
def kafka_errors(what: str, where: str) -> Iterator[None]:
    """Translate kafka-python, aiokafka and confluent-kafka errors into one-line
    `BrokerError`s: ``what`` failed at ``where``. (The libraries have separate exception
    trees.)"""
    from aiokafka.errors import KafkaError as AioKafkaError
    from confluent_kafka import KafkaError as ConfluentError
    from confluent_kafka import KafkaException
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, ConfluentError):
            name, detail = error.name(), error.str()
        else:
            name, detail = type(exc).__name__, _first_line(exc)
        raise BrokerError(f"{what} at {where} failed: {name}: {detail}") from exc
    except (KafkaError, AioKafkaError) as exc:
        raise BrokerError(
            f"{what} at {where} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().removeprefix(f"{type(exc).__name__}:").strip().splitlines()
    return text[0][:300] if text else "no detail"


@contextlib.contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    # kafka-python logs every refused connection at ERROR; while probing, our own retry
    # line says it once, so its chatter is muted for the probe's duration only.
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def probe(
    bootstrap_servers: str, timeout_s: float = 5.0, extra: dict[str, Any] | None = None
) -> None:
    """One metadata round trip; raises `BrokerError` when the broker does not answer."""
    from kafka.admin import KafkaAdminClient

    options = {
        "bootstrap_servers": bootstrap_servers.split(","),
        "client_id": CLIENT_ID,
        **(extra or {}),
    }
    timeout_ms = int(timeout_s * 1000)
    with _quiet_kafka_logs(), kafka_errors("Kafka metadata request", bootstrap_servers):
        admin = KafkaAdminClient(
            **options, bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms
        )
        try:
            admin.list_topics()
        finally:
            admin.close()


def retry_delay(exc: BrokerError, where: str, attempt: int, attempts: int) -> float:
    """After failed try ``attempt`` of ``attempts``: the backoff to wait (logged as one
    warning), or, on the last try, one `BrokerError` line saying Kafka is unreachable."""
    if attempt == attempts:
        raise BrokerError(
            f"cannot reach Kafka at {where} after {attempts} attempts ({exc})"
        ) from exc
    delay = min(10.0, 0.5 * 2.0 ** (attempt - 1))
    log.warning(
        "Kafka unreachable, retrying",
        extra={"bootstrap_servers": where, "attempt": attempt, "of": attempts, "delay_s": delay},
    )
    return delay


def wait_for_broker(kafka: KafkaSettings, timeout_s: float = 5.0) -> None:
    """Probe the broker, retrying ``kafka.connect_retries`` times with exponential backoff.

    Each failed try is one warning log; the final failure is one `BrokerError` line.
    """
    where = servers(kafka)
    options = kafka_python_options(kafka)
    options.pop("bootstrap_servers")
    attempts = kafka.connect_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            probe(where, timeout_s, options)
            return
        except BrokerError as exc:
            time.sleep(retry_delay(exc, where, attempt, attempts))


def ensure_topics(settings: Settings) -> list[str]:
    """Create Vigil's topics when missing (idempotent); returns the names created now."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    kafka = settings.kafka
    wanted = [kafka.events_topic, *kafka.input_topics, kafka.feedback_topic, kafka.dlq_topic]
    where = servers(kafka)
    created: list[str] = []
    with kafka_errors("creating topics", where):
        admin = KafkaAdminClient(**kafka_python_options(kafka), request_timeout_ms=10_000)
        try:
            missing = [name for name in wanted if name not in set(admin.list_topics())]
            for name in missing:
                # One request per topic: a topic created concurrently by another worker
                # must not fail the creation of the others.
                try:
                    admin.create_topics([NewTopic(name, kafka.partitions, 1)])
                    created.append(name)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()
    if created:
        log.info("topics created", extra={"topics": created, "partitions": kafka.partitions})
    return created


class OffsetReader:
    """Reads the worker's committed offsets: (topic, partition) -> next offset to read.

    Events from ``group_id``, feedback from `faust_group`.
    Progress is measured against these and the producer's own record offsets, never
    against ``end_offsets`` (which some brokers, tansu among them, get wrong).

    One admin client serves every `read`: a progress loop polling a few times a second
    would otherwise pay a client start-up (connect, version probe, metadata) per poll,
    measured at ~2 us of CPU per event ingested when bench/ingest.py polled that way,
    taken from the worker it was measuring.
    """

    def __init__(self, settings: Settings) -> None:
        from kafka.admin import KafkaAdminClient

        kafka = settings.kafka
        # The events group reads the input topics too (`kafka.input_topics`).
        self._wanted = {
            kafka.group_id: {kafka.events_topic, *kafka.input_topics},
            faust_group(kafka): {kafka.feedback_topic},
        }
        self._where = servers(kafka)
        with kafka_errors("reading committed offsets", self._where):
            self._admin = KafkaAdminClient(**kafka_python_options(kafka), request_timeout_ms=10_000)

    def read(self) -> dict[tuple[str, int], int]:
        result: dict[tuple[str, int], int] = {}
        with kafka_errors("reading committed offsets", self._where):
            for group, topics in self._wanted.items():
                offsets = self._admin.list_group_offsets({group: None}).get(group, {})
                result.update(
                    ((tp.topic, tp.partition), meta.offset)
                    for tp, meta in offsets.items()
                    if meta.offset >= 0 and tp.topic in topics
                )
        return result

    def consumed(self, ends: dict[str, int]) -> int:
        """How many of the produced messages are committed; ``ends``: the producer's
        ``end_offsets`` ("topic:partition" -> next offset after its last record)."""
        committed = self.read()
        done = 0
        for key, end in ends.items():
            topic, _, partition = key.rpartition(":")
            done += min(committed.get((topic, int(partition)), 0), end)
        return done

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._admin.close()

    def __enter__(self) -> OffsetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
