"""`vigil produce FILE`: send a JSONL file to Kafka, one line per message, with kafka-python.

Lines are sent as they are (no parsing here: a broken line is the worker's to dead-letter,
exactly as if the monitored service had sent it). Batching and linger keep throughput up;
``acks=all`` makes a counted send one the broker has stored.

The idempotent producer is off on purpose: the dev broker (tansu) does not support it,
and Vigil does not need it; every stored row is keyed by event_id, so a retried send
that lands twice collapses downstream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from monitor.config import Settings
from monitor.errors import ConfigError
from streams.admin import ensure_topics, kafka_errors, wait_for_broker
from streams.client_config import kafka_python_options, servers

log = logging.getLogger("vigil.produce")

#: Lines between progress reports (cheap: a callback, not a redraw).
_PROGRESS_EVERY = 500
_PRODUCER_OPTIONS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": False,
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "max_request_size": 2 * 1024 * 1024,
    "delivery_timeout_ms": 60_000,
    "request_timeout_ms": 30_000,
}


class _Tally:
    """Delivery outcomes, counted from the producer's I/O thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.failed: Counter[str] = Counter()
        self.ends: dict[str, int] = {}

    def ok(self, metadata: Any) -> None:
        key = f"{metadata.topic}:{metadata.partition}"
        with self._lock:
            self.sent += 1
            if metadata.offset + 1 > self.ends.get(key, 0):
                self.ends[key] = metadata.offset + 1

    def error(self, exc: BaseException) -> None:
        with self._lock:
            self.failed[type(exc).__name__] += 1


def produce_lines(
    settings: Settings,
    lines: Iterable[bytes],
    topic: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Send each non-blank line as one message; returns the delivery summary.
    ``on_progress(read, delivered)``, when given, is called every few hundred lines."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    kafka = settings.kafka
    topic = topic or kafka.events_topic
    where = servers(kafka)
    wait_for_broker(kafka)
    # Vigil's topics get the configured partitions, not whatever a broker auto-creates.
    ensure_topics(settings)
    tally = _Tally()
    read = 0
    started = time.perf_counter()
    with kafka_errors("sending to Kafka", where):
        producer = KafkaProducer(**kafka_python_options(kafka), **_PRODUCER_OPTIONS)
        try:
            for line in lines:
                if not line.strip():
                    continue
                read += 1
                try:
                    future = producer.send(topic, value=line)
                except KafkaError as exc:  # too large, buffer full past max_block_ms...
                    tally.error(exc)
                    continue
                future.add_callback(tally.ok)
                future.add_errback(tally.error)
                if on_progress is not None and read % _PROGRESS_EVERY == 0:
                    on_progress(read, tally.sent)
            producer.flush()
            if on_progress is not None:
                on_progress(read, tally.sent)
        finally:
            producer.close(timeout=10)
    elapsed = time.perf_counter() - started
    failed = sum(tally.failed.values())
    summary = {
        "topic": topic,
        "bootstrap_servers": where,
        "lines_read": read,
        "sent": tally.sent,
        "failed": failed,
        "failed_by_error": dict(sorted(tally.failed.items())),
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(tally.sent / elapsed, 1) if elapsed > 0 else None,
        # "topic:partition" -> offset after the last record sent: what a consumer has to reach.
        "end_offsets": dict(sorted(tally.ends.items())),
    }
    log.info(
        "produce finished", extra={k: v for k, v in summary.items() if not isinstance(v, dict)}
    )
    return summary


def _file_lines(path: Path) -> Iterable[bytes]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for line in handle:
            yield line.rstrip(b"\r\n")


def count_lines(path: Path) -> int:
    """Non-blank lines of ``path`` (what `produce_file` will send)."""
    return sum(1 for line in _file_lines(path) if line.strip())


def produce_file(
    settings: Settings,
    path: Path,
    topic: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """`vigil produce`: send ``path`` (JSONL) to ``topic`` (default: kafka.events_topic)."""
    summary = produce_lines(settings, _file_lines(path), topic, on_progress)
    summary["file"] = str(path)
    if summary["failed"]:
        # Not an exception: the summary says what was delivered; the CLI exits non-zero.
        log.warning("some messages were not delivered", extra={"failed": summary["failed"]})
    return summary


def render_produce(data: dict[str, Any]) -> str:
    """The human-readable produce summary (``--json`` prints ``data`` itself)."""
    failed = f"{data['failed']}" + (
        "  (" + ", ".join(f"{k}: {v}" for k, v in data["failed_by_error"].items()) + ")"
        if data["failed"]
        else ""
    )
    return "\n".join(
        [
            f"topic            {data['topic']} at {data['bootstrap_servers']}",
            f"lines read       {data['lines_read']}",
            f"sent             {data['sent']}",
            f"failed           {failed}",
            f"elapsed          {data['elapsed_s']} s ({data['messages_per_s']} messages/s)",
        ]
    )
