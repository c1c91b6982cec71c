"""Messages that must never stop the worker: oversized (1.01 MB, 10 MB), invalid UTF-8,
deeply nested JSON, an event id reused with other content (and one redelivered). Each
becomes a dead letter by its rule, the DLQ record always fits
(payload cut to ``kafka.dlq_max_bytes``, headers saying so), the ``dead_letters`` table
keeps every byte, and the worker commits past them. Against a real tansu broker and a
real worker subprocess; the resend and error paths of `streams.dlq`, which no broker
here can provoke, against a stand-in topic."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError, NotLeaderForPartitionError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from kafka import KafkaProducer

from monitor.config import KafkaSettings, Settings, load_settings
from monitor.errors import BrokerError, EventError
from monitor.events import parse_event, parse_feedback
from monitor.pipeline import DeadLetter, RawMessage
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.client_config import DLQ_MAX_REQUEST_BYTES, kafka_python_options
from streams.dlq import dlq_record, send_dead_letters
from tests.fixtures.broker import consumed, read_topic, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

_EVENT = (
    b'{"event_id": "%s", "ts": "2026-11-22T09:00:00Z", "model": "m", '
    b'"request": {"messages": [{"role": "user", "content": "hi"}]}, '
    b'"response": {"content": "%s"}}'
)


def _event_of(size: int, event_id: bytes) -> bytes:
    """A well-formed event of exactly ``size`` bytes (a long answer)."""
    padding = size - len(_EVENT % (event_id, b""))
    return _EVENT % (event_id, b"x" * padding)


def _produce(settings: Settings, topic: str, values: list[bytes]) -> dict[str, int]:
    """Send ``values`` in order; "topic:partition" -> the offset after the last one.
    (Not `produce_lines`: `vigil produce` refuses lines over 2 MiB, by design.)"""
    producer = KafkaProducer(
        **kafka_python_options(settings.kafka), acks="all", max_request_size=32 * 1024 * 1024
    )
    try:
        ends: dict[str, int] = {}
        for value in values:
            meta = producer.send(topic, value=value).get(timeout=60)
            key = f"{meta.topic}:{meta.partition}"
            ends[key] = max(ends.get(key, 0), meta.offset + 1)
        return ends
    finally:
        producer.close(timeout=10)


@pytest.mark.integration
def test_oversized_and_malformed_messages_are_dead_lettered_and_committed_past(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any
) -> None:
    settings = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "data"))
    kafka = settings.kafka
    cut = kafka.dlq_max_bytes
    good = list(generate_lines(TrafficSpec(n=300, feedback_share=0.0, seed=3)))
    # Each bad message, by what it must become: its reason, and whether its DLQ payload
    # is cut (the 10,000 `[` are well under 1 MB: msgspec and pydantic refuse the depth).
    bad = {
        _event_of(1_010_392, b"big"): ("too_large", True),
        _event_of(10_000_000, b"huge"): ("too_large", True),
        _EVENT % (b"ev-\xff\xfe", b"ok"): ("invalid_utf8", False),
        b"[" * 10_000: ("invalid_json", False),
    }
    # The duplicate rule (monitor.pipeline.duplicates): the first message with an id wins;
    # the same id with other content is a dead letter; the same bytes again are a
    # skipped redelivery.
    first = parse_event(good[20])
    changed = orjson.loads(good[20])
    changed["response"]["content"] = "a different answer"
    conflict = orjson.dumps(changed)
    bad[conflict] = ("duplicate_id", False)
    big, huge, utf8, nested, _ = bad
    events = [*good[:100], big, *good[100:150], utf8, huge, *good[150:250], nested, *good[250:]]
    events[200:200] = [conflict, good[30]]
    rated = b'{"event_id": "ev-%d", "ts": "2026-11-22T09:00:00Z", "rating": -1, "comment": "%s"}'
    feedback_bad = rated % (1, b"y" * 1_010_000)
    feedback = [rated % (i, b"ok") for i in range(3)] + [feedback_bad]
    ensure_topics(settings)
    ends = _produce(settings, kafka.events_topic, events)
    ends |= _produce(settings, kafka.feedback_topic, feedback)
    assert ends == {f"{kafka.events_topic}:0": 306, f"{kafka.feedback_topic}:0": 4}

    worker = start_worker(settings)
    wait_consumed(settings, ends, worker)  # asserts the worker stays up meanwhile
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
    assert consumed(settings, ends) == 310  # committed up to the end of both topics

    expected = {(kafka.events_topic, value): rule for value, rule in bad.items()}
    expected[(kafka.feedback_topic, feedback_bad)] = ("too_large", True)
    offsets = {(kafka.events_topic, value): f"0:{events.index(value)}" for value in bad} | {
        (kafka.feedback_topic, feedback_bad): "0:3"
    }

    store = EmbeddedStore(settings.store.data_dir)
    try:
        [stored] = store.query("SELECT count() AS n FROM vigil.events FINAL")
        [late] = store.query("SELECT count() AS n FROM vigil.feedback FINAL WHERE source='late'")
        rows = store.query("SELECT source, position, reason, raw_b64 FROM vigil.dead_letters FINAL")
        kept = store.query(
            "SELECT response FROM vigil.events FINAL WHERE event_id = {id:String}",
            {"id": first.event_id},
        )
    finally:
        store.close()
    assert (int(stored["n"]), int(late["n"])) == (300, 3)
    assert kept == [{"response": first.response.content}]
    table = {
        (row["source"], base64.b64decode(row["raw_b64"])): (row["position"], row["reason"])
        for row in rows
    }
    assert len(rows) == len(table) == 6
    assert table == {key: (offsets[key], reason) for key, (reason, _) in expected.items()}

    records = read_topic(settings, kafka.dlq_topic, 6)
    assert len(records) == 6
    for record in records:
        headers = dict(record.headers)
        source = headers["vigil.source.topic"].decode()
        position = f"{headers['vigil.source.partition'].decode()}:"
        position += headers["vigil.source.offset"].decode()
        [original] = [value for (t, value), at in offsets.items() if (t, at) == (source, position)]
        reason, truncated = expected[(source, original)]
        assert headers["vigil.reason"] == reason.encode()
        assert len(record.value) <= cut
        if truncated:
            assert record.value == original[:cut]
            assert headers["vigil.truncated"] == b"1"
            assert headers["vigil.original_bytes"] == str(len(original)).encode()
            assert headers["vigil.sha256"] == hashlib.sha256(original).hexdigest().encode()
        else:
            assert record.value == original
            assert "vigil.truncated" not in headers
    assert "ingest failed" not in worker.log_path.read_text(errors="replace")


# -- no broker: the bounds, and what `send_dead_letters` does when a send is refused ------


def _dead(value: bytes, detail: str = "why", position: str = "0:7") -> DeadLetter:
    return DeadLetter(RawMessage(value, "vigil.events", position), "too_large", detail)


def test_the_largest_dead_letter_fits_the_producer() -> None:
    [field] = [m for m in KafkaSettings.model_fields["dlq_max_bytes"].metadata if hasattr(m, "le")]
    worst = DeadLetter(
        RawMessage(b"x" * 2_000_000, "t" * 249, f"{2**31}:{2**63}"),
        "invalid_field",
        "\u20ac" * 10_000,  # 3 bytes each: cut by bytes, not characters
    )
    value, headers = dlq_record(worst, field.le)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(None, value, headers)
    assert len(value) == field.le and size < DLQ_MAX_REQUEST_BYTES
    detail = dict(headers)["vigil.detail"]
    assert len(detail) == 498 and detail.decode() == "\u20ac" * 166  # whole characters


class _Topic:
    """Stands in for the Faust DLQ topic: acknowledges or fails each send as told."""

    def __init__(self, refuse: Any) -> None:
        self.refuse = refuse
        self.sent: list[tuple[bytes, dict[str, bytes]]] = []

    def get_topic_name(self) -> str:
        return "vigil.events.dlq"

    async def send(self, *, value: bytes, headers: list[tuple[str, bytes]], force: bool) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error = self.refuse(value)
        if error is None:
            self.sent.append((value, dict(headers)))
            done.set_result(None)
        else:
            done.set_exception(error)
        return done


def test_a_dead_letter_the_broker_finds_too_large_goes_without_its_payload() -> None:
    topic = _Topic(lambda value: MessageSizeTooLargeError() if len(value) > 1000 else None)
    dead = [_dead(b"a" * 5000, position="0:1"), _dead(b"small", position="0:2")]
    asyncio.run(send_dead_letters(topic, dead, 4096))  # type: ignore[arg-type]
    [(small, _), (empty, headers)] = topic.sent
    assert (small, empty) == (b"small", b"")
    assert headers["vigil.source.offset"] == b"1" and headers["vigil.truncated"] == b"1"
    assert headers["vigil.original_bytes"] == b"5000"


def test_a_dlq_send_that_keeps_failing_is_one_broker_error() -> None:
    topic = _Topic(lambda value: NotLeaderForPartitionError() if value == b"bad" else None)
    dead = [_dead(b"fine", position="0:1"), _dead(b"bad", position="0:2")]
    with pytest.raises(BrokerError) as raised:
        asyncio.run(send_dead_letters(topic, dead, 4096))  # type: ignore[arg-type]
    assert str(raised.value).startswith(
        "dead-letter send to vigil.events.dlq failed for vigil.events 0:2 (3 bytes, too_large): "
        "NotLeaderForPartitionError"
    )
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "raw",
    [b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'{"x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"],
    ids=["objects", "arrays-in-an-object"],
)
def test_deep_nesting_inside_an_object_is_an_event_error(raw: bytes) -> None:
    """msgspec raises RecursionError past ~1,000 levels inside an object: a dead letter
    (invalid_json), never a crash; late feedback the same."""
    with pytest.raises(EventError) as caught:
        parse_event(raw)
    assert caught.value.reason == "invalid_json"
    with pytest.raises(EventError) as caught:
        parse_feedback(raw)
    assert caught.value.reason in {"invalid_json", "not_an_object", "missing_field"}
