"""Three workers in one group, one killed mid-stream: the survivors take over its partition.

Each worker owns its own embedded store (chDB allows one owner per directory), so the
exact-count check is over the union of the three stores: every valid event and every dead
letter is stored at least once somewhere, each store holds no duplicates in its FINAL
view, and the group's committed offsets reach the end of every partition.
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
    """Wait until each worker holds one partition."""
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


def test_killed_worker_partitions_move_to_the_survivors(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object
) -> None:
    def settings(name: str) -> Settings:
        kafka = {"partitions": 3, "batch_max": 200}
        return load_settings(overrides=stream_overrides(dev_broker, tmp_path / name, kafka=kafka))

    configs = [settings(name) for name in ("a", "b", "c")]
    ensure_topics(configs[0])
    lines = list(generate_lines(TrafficSpec(n=9_000, malformed_share=0.01, seed=9)))
    early = produce_lines(configs[0], lines[:3_000])

    workers = [start_worker(config) for config in configs]  # type: ignore[operator]
    _wait_split(workers)
    late = produce_lines(configs[0], lines[3_000:])
    ends = {
        k: max(early["end_offsets"].get(k, 0), late["end_offsets"].get(k, 0))
        for k in early["end_offsets"] | late["end_offsets"]
    }
    assert len(ends) == 3, ends  # traffic on every partition
    doomed, survivors = workers[0], workers[1:]
    wait_consumed(configs[0], ends, doomed, at_least=consumed(configs[0], ends) + 400)
    assert doomed.signal(signal.SIGKILL) == -signal.SIGKILL

    for survivor in survivors:  # the group finishes all three partitions
        wait_consumed(configs[1], ends, survivor)
    owned = sorted(p for survivor in survivors for p in _assigned(survivor))
    assert owned == ["vigil.events:0", "vigil.events:1", "vigil.events:2"]
    for survivor in survivors:
        assert survivor.signal(signal.SIGTERM) == 0, survivor.log_tail()

    ids: set[str] = set()
    dead: set[str] = set()
    for config in configs:
        stored_ids, stored_dead = _stored(config)
        ids |= stored_ids
        dead |= stored_dead
    valid = [orjson.loads(line)["event_id"] for line in lines if _is_event(line)]
    assert len(valid) == 9_000
    assert ids == set(valid)
    assert len(dead) == len(lines) - 9_000


def _is_event(line: bytes) -> bool:
    from monitor.events import parse_event

    try:
        parse_event(line)
    except Exception:
        return False
    return True
