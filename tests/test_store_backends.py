"""The storage suite, run against both backends: embedded chDB, and the server backend
(clickhouse-connect) talking to a chDB store through Vigil's HTTP endpoint on loopback."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from monitor.checks import Heuristics
from monitor.config import Settings
from monitor.errors import StoreError
from monitor.events import Event, event_to_json, parse_event, parse_feedback, request_json
from monitor.pipeline import Pipeline, RawMessage
from monitor.pipeline import rows as R
from monitor.pipeline.sampling import Decision
from monitor.store import schema
from monitor.store.base import Store
from monitor.store.schema import INGEST_TABLE, TABLES, ingest_columns
from monitor.store.server import ServerStore
from tests.fixtures import rows as fixture_rows
from vigil.traffic import TrafficSpec, generate_events

NOW = "2026-11-22T09:00:00.000+00:00"


def make_events(n: int = 30, seed: int = 11) -> list[Event]:
    raw = list(generate_events(TrafficSpec(n=n, seed=seed, feedback_share=0.5)))
    # One event with everything a naive serializer gets wrong.
    raw[0]["response"]["content"] = (
        "Quote ' double \" back\\slash\nnew line, tab\t, émoji 🎉, NUL-free"
    )
    raw[0]["metadata"] = {"k'ey": 'va"lue', "unicode": "日本語"}
    return [parse_event(orjson.dumps(e)) for e in raw]


def fetch(store: Store, table: str, columns: str, order: str = "event_id") -> list[dict[str, Any]]:
    return store.query(f"SELECT {columns} FROM {store.database}.{table} FINAL ORDER BY {order}")


def test_migrate_is_idempotent_and_creates_every_table(any_store: Store) -> None:
    any_store.migrate()
    any_store.migrate()
    names = {
        row["name"]
        for row in any_store.query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            {"db": any_store.database},
        )
    }
    assert {table.name for table in TABLES} <= names
    assert {"events", "scores", "decisions", "feedback", "checks", "rollup_minute"} <= names


def test_events_round_trip(any_store: Store) -> None:
    events = make_events()
    any_store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
    got = fetch(
        any_store,
        "events",
        "event_id, ts, route, model_version, response, latency_ms, "
        "prompt_tokens, feedback_rating, metadata",
    )
    assert len(got) == len(events)
    by_id = {row["event_id"]: row for row in got}
    for event in events:
        row = by_id[event.event_id]
        assert row["response"] == event.response.content
        assert row["route"] == event.route
        assert row["model_version"] == event.model_version
        assert row["latency_ms"] == event.response.latency_ms
        assert row["prompt_tokens"] == event.response.prompt_tokens
        assert row["feedback_rating"] == (event.feedback.rating if event.feedback else None)
        assert row["metadata"] == {k: str(v) for k, v in event.metadata.items()}
        assert row["ts"] == event.ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def test_the_ingest_insert_stores_what_dict_rows_store(
    any_store: Store, settings: Settings
) -> None:
    # The hot path inserts one encoded row per event into `ingest` (the request embedded
    # as a raw JSON object) and the store's views copy it into `events` and `checks`: what
    # lands must be exactly what the dict rows of each table store.
    events = make_events()
    raw = [RawMessage(event_to_json(e), "test", str(i)) for i, e in enumerate(events)]
    prepared = Pipeline(settings, any_store).prepare(raw)
    assert len(prepared.ingest) == len(events)
    assert set(R.INGEST_COLUMNS) == set(ingest_columns())
    any_store.insert(INGEST_TABLE, prepared.ingest)
    kept = any_store.query(f"SELECT count() AS n FROM {any_store.database}.{INGEST_TABLE}")
    assert kept == [{"n": 0}]  # engine Null: the views keep the rows
    shown = {"events": "event_id, request, response, metadata, latency_ms, feedback_rating"}
    shown["checks"] = "event_id, ts, route, checks_version, response_chars, refusal, failed"
    via_ingest = {table: fetch(any_store, table, cols) for table, cols in shown.items()}
    assert [len(rows) for rows in via_ingest.values()] == [len(events)] * 2
    for table in shown:
        any_store.command(f"TRUNCATE TABLE {any_store.database}.{table}")
    heuristics = Heuristics(settings.heuristics)
    any_store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
    any_store.insert("checks", [fixture_rows.check_row(e, heuristics.check(e)) for e in events])
    assert via_ingest == {table: fetch(any_store, table, cols) for table, cols in shown.items()}
    by_id = sorted(events, key=lambda e: e.event_id)
    for row, event in zip(via_ingest["events"], by_id, strict=True):
        assert row["request"] == request_json(event.request)


def test_checks_and_scores_round_trip(any_store: Store, settings: Settings) -> None:
    events = make_events()
    heuristics = Heuristics(settings.heuristics)
    results = {e.event_id: heuristics.check(e) for e in events}
    any_store.insert("checks", [fixture_rows.check_row(e, results[e.event_id]) for e in events])
    any_store.insert(
        "scores",
        [
            R.score_row(e, "toxicity", "v1", "toxicity", i / 100, "ok", NOW)
            for i, e in enumerate(events)
        ],
    )
    checks = {
        row["event_id"]: row
        for row in fetch(any_store, "checks", "event_id, failed, pii_kinds, truncated")
    }
    for event in events:
        result = results[event.event_id]
        assert checks[event.event_id]["failed"] == result.failed
        assert checks[event.event_id]["pii_kinds"] == result.pii_kinds
        assert bool(checks[event.event_id]["truncated"]) == result.truncated
    scores = fetch(any_store, "scores", "event_id, scorer, value")
    assert {row["event_id"]: row["value"] for row in scores} == {
        e.event_id: i / 100 for i, e in enumerate(events)
    }


def test_feedback_round_trip_and_latest_wins(any_store: Store) -> None:
    events = [e for e in make_events() if e.feedback is not None]
    any_store.insert("feedback", [fixture_rows.inline_feedback_row(e, NOW) for e in events])
    target = events[0]
    late = parse_feedback(
        orjson.dumps(
            {
                "event_id": target.event_id,
                "ts": "2026-11-22T10:00:00Z",
                "rating": -1,
                "comment": "wrong 'refund' amount",
            }
        )
    )
    any_store.insert("feedback", [R.late_feedback_row(late, "2026-11-22T10:00:01+00:00")])
    got = {
        row["event_id"]: row
        for row in fetch(any_store, "feedback", "event_id, rating, comment, source")
    }
    assert len(got) == len(events)
    assert got[target.event_id] == {
        "event_id": target.event_id,
        "rating": -1,
        "comment": "wrong 'refund' amount",
        "source": "late",
    }
    for event in events[1:]:
        assert event.feedback is not None
        assert got[event.event_id]["rating"] == event.feedback.rating


def test_duplicate_inserts_collapse_with_final(any_store: Store) -> None:
    events = make_events(20)
    rows = [fixture_rows.event_row(e, NOW) for e in events]
    any_store.insert("events", rows)
    any_store.insert("events", rows)  # a redelivered batch
    any_store.insert("events", rows[:5])
    count = any_store.query(f"SELECT count() AS n FROM {any_store.database}.events FINAL")
    assert int(count[0]["n"]) == 20


@pytest.mark.parametrize("pending_first", [True, False])
def test_decision_rank_replaces_pending(any_store: Store, pending_first: bool) -> None:
    events = make_events(10)
    pending = [R.decision_row(e, Decision("judge", "pending", "sampled"), NOW) for e in events]
    scored = [R.decision_row(e, Decision("judge", "scored", "sampled"), NOW) for e in events]
    for batch in (pending, scored) if pending_first else (scored, pending):
        any_store.insert("decisions", batch)
    got = fetch(any_store, "decisions", "event_id, scorer, decision")
    assert len(got) == 10
    assert {row["decision"] for row in got} == {"scored"}


@pytest.mark.parametrize("store_ttl_days", [7])
def test_ttl_clause_uses_configured_days(any_store: Store, store_ttl_days: int) -> None:
    for table in ("events", "scores", "decisions", "feedback"):
        ddl = any_store.query(f"SHOW CREATE TABLE {any_store.database}.{table}")[0]["statement"]
        assert f"TTL toDateTime(ts) + toIntervalDay({store_ttl_days})" in ddl
        assert "ReplacingMergeTree" in ddl


def test_tables_every_batch_writes_take_their_merge_tuning(any_store: Store) -> None:
    for table in ("events", "checks", "feedback", "decisions"):
        ddl = any_store.query(f"SHOW CREATE TABLE {any_store.database}.{table}")[0]["statement"]
        assert "merge_selector_base = 20" in ddl, ddl
    ddl = any_store.query(f"SHOW CREATE TABLE {any_store.database}.scores")[0]["statement"]
    assert "merge_selector_base" not in ddl


def test_tuning_a_server_rejects_is_logged_and_migration_goes_on(
    any_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A setting this server does not know, as an older ClickHouse would answer for ours.
    unknown = (("no_such_vigil_setting", "1"),)
    tables = [replace(t, tuning=unknown) if t.name == "events" else t for t in TABLES]
    monkeypatch.setattr(schema, "TABLES", tables)
    with caplog.at_level(logging.WARNING, logger="vigil.store"):
        any_store.migrate()
    rejected = [r for r in caplog.records if r.getMessage() == "table tuning not applied"]
    assert len(rejected) == 1
    assert "no_such_vigil_setting" in rejected[0].statement  # type: ignore[attr-defined]
    # The checks table's tuning, after the rejected one, was still applied.
    ddl = any_store.query(f"SHOW CREATE TABLE {any_store.database}.checks")[0]["statement"]
    assert "merge_selector_base = 20" in ddl


def test_query_parameters_are_quoted(any_store: Store) -> None:
    events = make_events(5)
    any_store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
    tricky = "x' OR '1'='1"
    sql = f"SELECT count() AS n FROM {any_store.database}.events WHERE event_id = {{id:String}}"
    assert int(any_store.query(sql, {"id": tricky})[0]["n"]) == 0
    assert int(any_store.query(sql, {"id": events[1].event_id})[0]["n"]) == 1
    since = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    got = any_store.query(
        f"SELECT event_id FROM {any_store.database}.events WHERE ts >= {{since:DateTime64(3)}} "
        "AND ts < {until:DateTime64(3)} ORDER BY event_id",
        {"since": since, "until": since + timedelta(seconds=5)},
    )
    assert [row["event_id"] for row in got] == sorted(
        e.event_id for e in events if e.ts < since + timedelta(seconds=5)
    )


def test_command_and_empty_insert(any_store: Store) -> None:
    any_store.insert("events", [])
    any_store.command(f"OPTIMIZE TABLE {any_store.database}.events FINAL")
    assert (
        int(any_store.query(f"SELECT count() AS n FROM {any_store.database}.events")[0]["n"]) == 0
    )


def test_bad_sql_raises_store_error_with_message(any_store: Store) -> None:
    with pytest.raises(StoreError, match="Syntax error"):
        any_store.query("SELEC 1")
    with pytest.raises(StoreError, match=r"(?i)unknown table|does not exist"):
        any_store.query(f"SELECT * FROM {any_store.database}.no_such_table")


def test_bad_rows_raise_store_error(any_store: Store) -> None:
    row = fixture_rows.event_row(make_events(1)[0], NOW)
    row["ts"] = "not a time"
    with pytest.raises(StoreError):
        any_store.insert("events", [row])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(StoreError) as caught:
        ServerStore(url, "vigil", "s3cret-pw", "vigil", 30, connect_timeout_s=2)
    message = str(caught.value)
    assert url in message and "connection refused" in message
    assert "s3cret-pw" not in message


def test_bad_server_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match=r"store\.url"):
        ServerStore("ftp://user:pw@example.invalid", "vigil", "", "vigil", 30)
