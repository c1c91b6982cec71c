"""The live worker against a real tansu broker and chDB: exactly-once results, DLQ, errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.children import free_port
from monitor.config import Settings, load_settings
from monitor.events import parse_event
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import read_topic, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration


def _valid(line: bytes) -> bool:
    try:
        parse_event(line)
    except Exception:
        return False
    return True


def test_worker_stores_each_valid_event_once_and_dead_letters_the_rest(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object
) -> None:
    stream_settings = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "data"))
    lines = list(generate_lines(TrafficSpec(n=10_000, malformed_share=0.01, seed=11)))
    bad = [line for line in lines if not _valid(line)]
    assert len(lines) - len(bad) == 10_000 and len(bad) > 50
    ensure_topics(stream_settings)
    sent = produce_lines(stream_settings, lines)
    assert sent["sent"] == len(lines) and sent["failed"] == 0

    worker = start_worker(stream_settings)  # type: ignore[operator]
    wait_consumed(stream_settings, sent["end_offsets"], worker)
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()

    store = EmbeddedStore(stream_settings.store.data_dir)
    try:
        [events] = store.query(
            "SELECT count() AS n, uniqExact(event_id) AS ids FROM vigil.events FINAL"
        )
        assert (int(events["n"]), int(events["ids"])) == (10_000, 10_000)
        [checks] = store.query("SELECT count() AS n FROM vigil.checks FINAL")
        assert int(checks["n"]) == 10_000
        dead = store.query("SELECT reason, position FROM vigil.dead_letters FINAL")
        assert len(dead) == len(bad)
        assert all(row["reason"] for row in dead)
    finally:
        store.close()

    records = read_topic(stream_settings, stream_settings.kafka.dlq_topic, len(bad))
    assert sorted(r.value for r in records) == sorted(bad)
    for record in records:
        headers = dict(record.headers)
        assert headers["vigil.reason"] in {
            b"invalid_json",
            b"invalid_utf8",
            b"not_an_object",
            b"missing_field",
            b"invalid_field",
        }
        assert headers["vigil.source.topic"] == stream_settings.kafka.events_topic.encode()
    positions = {
        f"{int(dict(r.headers)['vigil.source.partition'])}:"
        f"{int(dict(r.headers)['vigil.source.offset'])}"
        for r in records
    }
    assert positions == {row["position"] for row in dead}


def test_bad_late_feedback_is_dead_lettered_and_good_feedback_stored(
    stream_settings: Settings, start_worker: object
) -> None:
    ensure_topics(stream_settings)
    good = [
        b'{"event_id": "ev-%d", "ts": "2026-11-22T09:00:00Z", "rating": -1}' % i for i in range(50)
    ]
    bad = [b'{"event_id": "ev-x", "rating": 7}', b"nope"]
    sent = produce_lines(stream_settings, good + bad, stream_settings.kafka.feedback_topic)
    worker = start_worker(stream_settings)  # type: ignore[operator]
    wait_consumed(stream_settings, sent["end_offsets"], worker)
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
    store = EmbeddedStore(stream_settings.store.data_dir)
    try:
        [row] = store.query("SELECT count() AS n FROM vigil.feedback FINAL WHERE source = 'late'")
        dead = store.query("SELECT count() AS n FROM vigil.dead_letters FINAL")
    finally:
        store.close()
    assert int(row["n"]) == 50
    assert int(dead[0]["n"]) == 2
    records = read_topic(stream_settings, stream_settings.kafka.dlq_topic, 2)
    assert sorted(r.value for r in records) == sorted(bad)


def _vigil(
    *args: str, env_extra: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("command", [["worker"], ["produce", "EVENTS"]])
def test_unreachable_broker_is_one_clear_error(tmp_path: Path, command: list[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"{}\n")
    port = free_port()  # nothing listens there
    args = [a if a != "EVENTS" else str(events) for a in command]
    result = _vigil(
        "--bootstrap-servers",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(tmp_path / "d"),
        *args,
        env_extra={"VIGIL_KAFKA__CONNECT_RETRIES": "1"},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("vigil: error:")]
    assert len(errors) == 1
    assert f"cannot reach Kafka at 127.0.0.1:{port} after 2 attempts" in errors[0]


def test_produce_cli_reports_what_it_sent(dev_broker: DevBroker, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(line + b"\n" for line in generate_lines(TrafficSpec(n=300))) + b"\n\n"
    )
    result = _vigil(
        "--bootstrap-servers", dev_broker.bootstrap_servers, "produce", str(events), "--json"
    )
    assert result.returncode == 0, result.stderr
    import orjson

    summary = orjson.loads(result.stdout)
    assert (summary["lines_read"], summary["sent"], summary["failed"]) == (300, 300, 0)
    assert summary["end_offsets"] == {"vigil.events:0": 300}


def test_topic_creation_is_idempotent(dev_broker: DevBroker, tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"kafka": {"bootstrap_servers": dev_broker.bootstrap_servers, "partitions": 3}}
    )
    assert sorted(ensure_topics(settings)) == ["vigil.events", "vigil.events.dlq", "vigil.feedback"]
    assert ensure_topics(settings) == []


def test_dev_broker_stops_by_pid(tmp_path: Path) -> None:
    import os

    broker = DevBroker(log_dir=tmp_path).start()
    pid = broker.pid
    assert pid is not None
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
