"""Two workers in one group, one killed mid-stream: the survivor takes over.

Each worker owns its own embedded store (chDB allows one owner per directory), so the
exact-count check is over the union of both stores: every valid event and every dead
letter is stored at least once somewhere, each store holds no duplicates in its FINAL
view, and the group's committed offsets reach the end of both partitions.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest

from monitor.config import Settings, load_settings
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import WorkerProcess, consumed, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

pytestmark = pytest.mark.integration


def _assigned(worker: WorkerProcess) -> list[str]:
    """The partitions of the worker's last "partitions assigned" log line."""
    assigned: list[str] = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if '"partitions assigned"' in line:
            assigned = list(orjson.loads(line)["partitions"])
    return assigned


def _wait_split(workers: list[WorkerProcess], timeout_s: float = 120.0) -> None:
    """Wait until each worker holds one of the two partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.alive, worker.log_tail()
        if all(len(_assigned(w)) == 1 for w in workers):
            return
        time.sleep(0.2)
    raise AssertionError("partitions never split: " + str([_assigned(w) for w in workers]))


def _stored(settings: Settings) -> tuple[set[str], set[str]]:
    store = EmbeddedStore(settings.store.data_dir)
    try:
        ids = {r["event_id"] for r in store.query("SELECT event_id FROM vigil.events FINAL")}
        [events] = store.query("SELECT count() AS n FROM vigil.events FINAL")
        dead = store.query("SELECT position FROM vigil.dead_letters FINAL")
    finally:
        store.close()
    assert int(events["n"]) == len(ids)  # no duplicates within one store
    assert len(dead) == len({r["position"] for r in dead})
    return ids, {r["position"] for r in dead}


def test_killed_worker_partitions_move_to_the_survivor(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object
) -> None:
    def settings(name: str) -> Settings:
        kafka = {"partitions": 2, "batch_max": 200}
        return load_settings(overrides=stream_overrides(dev_broker, tmp_path / name, kafka=kafka))

    first, second = settings("a"), settings("b")
    ensure_topics(first)
    lines = list(generate_lines(TrafficSpec(n=8_000, malformed_share=0.01, seed=9)))
    early = produce_lines(first, lines[:3_000])

    doomed = start_worker(first)  # type: ignore[operator]
    survivor = start_worker(second)  # type: ignore[operator]
    _wait_split([doomed, survivor])
    late = produce_lines(first, lines[3_000:])
    ends = {
        k: max(early["end_offsets"].get(k, 0), late["end_offsets"].get(k, 0))
        for k in early["end_offsets"] | late["end_offsets"]
    }
    assert len(ends) == 2, ends  # traffic on both partitions
    wait_consumed(first, ends, doomed, at_least=consumed(first, ends) + 400)
    assert doomed.signal(signal.SIGKILL) == -signal.SIGKILL

    wait_consumed(second, ends, survivor)  # the survivor's group finished both partitions
    assert _assigned(survivor) == ["vigil.events:0", "vigil.events:1"]
    assert survivor.signal(signal.SIGTERM) == 0, survivor.log_tail()

    ids_a, dead_a = _stored(first)
    ids_b, dead_b = _stored(second)
    valid = [orjson.loads(line)["event_id"] for line in lines if _is_event(line)]
    assert len(valid) == 8_000
    assert ids_a | ids_b == set(valid)
    assert len(dead_a | dead_b) == len(lines) - 8_000


def _is_event(line: bytes) -> bool:
    from monitor.events import parse_event

    try:
        parse_event(line)
    except Exception:
        return False
    return True
