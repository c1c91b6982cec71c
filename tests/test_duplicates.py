"""The duplicate-id rule: the first message with an event id wins.

Through `vigil replay` (the worker's case is in test_streams_dead_letters): a redelivery
(same bytes) is skipped and counted, a conflict (same id, other content, here in the
next month, which the store's ``FINAL`` alone would keep beside the first) is a dead
letter with reason ``duplicate_id``, and the store holds the first version only.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import orjson

from monitor.pipeline.duplicates import CONFLICT, NEW, SAME, DuplicateIds
from monitor.store.embedded import EmbeddedStore
from tests.test_replay import _cli_replay
from vigil.traffic import TrafficSpec, generate_lines


def _replay(data_dir: Path, events: Path) -> dict[str, object]:
    done = _cli_replay(data_dir, events, "--json")
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = orjson.loads(done.stdout)
    return summary


def test_replay_keeps_the_first_version_and_dead_letters_a_conflict(tmp_path: Path) -> None:
    # 200 events every 2 s from 23:55 on 31 October: the stream crosses into November.
    start = datetime(2026, 10, 31, 23, 55, tzinfo=UTC)
    good = list(generate_lines(TrafficSpec(n=200, start=start, seed=4, feedback_share=0.0)))
    first = orjson.loads(good[10])
    assert first["ts"].startswith("2026-10-31")
    later = orjson.loads(good[190])
    assert later["ts"].startswith("2026-11-01")
    conflict = orjson.dumps({**later, "event_id": first["event_id"]})
    lines = [*good[:180], conflict, good[10], *good[180:], good[11]]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in lines))

    summary = _replay(tmp_path / "data", events)

    assert summary["read"] == 203
    assert summary["stored"] == 200
    assert summary["duplicates"] == 2
    assert summary["rejected_by_reason"] == {"duplicate_id": 1}
    store = EmbeddedStore(tmp_path / "data")
    try:
        kept = store.query(
            "SELECT toYYYYMM(ts) AS month, response FROM vigil.events FINAL"
            " WHERE event_id = {id:String}",
            {"id": first["event_id"]},
        )
        [total] = store.query("SELECT count() AS n FROM vigil.events FINAL")
        dead = store.query("SELECT reason, detail, raw_b64 FROM vigil.dead_letters FINAL")
    finally:
        store.close()
    assert kept == [{"month": 202610, "response": first["response"]["content"]}]
    assert int(total["n"]) == 200
    [letter] = dead
    assert letter["reason"] == "duplicate_id"
    assert first["event_id"] in letter["detail"] and "first one is kept" in letter["detail"]
    assert base64.b64decode(letter["raw_b64"]) == conflict


def test_the_window_is_bounded_and_catches_duplicates_within_a_batch() -> None:
    window = DuplicateIds(window=3)
    verdicts = list(window.classify(["a", "b", "a", "a"], [b"1", b"2", b"1", b"x"]))
    assert verdicts == [NEW, NEW, SAME, CONFLICT]
    assert list(window.classify(["c", "d"], [b"3", b"4"])) == [NEW, NEW]
    assert len(window) == 3  # "a" was the oldest: forgotten
    # "a" comes back as new and pushes out "b"; "c" is still remembered.
    assert list(window.classify(["a", "c"], [b"other", b"other"])) == [NEW, CONFLICT]
