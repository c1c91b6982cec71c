"""Privacy settings through `vigil replay`: PII redacted before storage (the checks still
flag it), a retention for the raw text of its own (a column TTL), and the judge never sent
what the store may not keep.

Replay and the live worker run the same `Pipeline` (`monitor.assembly.build_pipeline`),
where redaction happens; the CLI replay covers the cases, one worker run against the tansu
broker checks the live path (its store is opened by `own_embedded_store`, its late
feedback comes from the feedback topic, its dead letters also go to the DLQ topic).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from monitor.assembly import SCORERS
from monitor.checks.pii import pii_spans
from monitor.config import load_settings
from monitor.scorers.base import Job
from monitor.scorers.judge.scorer import JudgeScorer
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import read_topic, stream_overrides, wait_consumed
from tests.fixtures.llama import Recorder, make_event
from tests.test_replay import _cli_replay
from tests.test_security_masking import PII_PROMPT, PII_RESPONSE, _reply

N = 40
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
#: A dead letter that is valid UTF-8 (a required field is missing) and one that is not.
BAD_JSON = orjson.dumps({"event_id": "bad-1", "note": "write to leak@example.com"})
BAD_BYTES = b"\xff\xfe not utf-8, card " + CARD.encode()


def _event(i: int, ts: datetime) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i:03d}",
        "ts": ts.isoformat(),
        "model": "m",
        "route": "support/billing",
        "request": {
            "messages": [
                {"role": "system", "content": f"Escalate to ops-{i}@corp.example.com."},
                {"role": "user", "content": [
                    {"type": "text", "text": f"My card {CARD} was declined, IBAN {IBAN}."},
                    {"type": "text", "text": f"Call +1 (415) 555-{1000 + i} or SSN 123-45-6789"},
                ]},
            ],
            "params": {"temperature": 0.2, "user": f"user{i}@mail.example.org"},
        },
        "response": {"content": f"We emailed jane.doe{i}@example.com about card {CARD}."},
        "shadow": {"content": f"Ring 415-555-{2000 + i}.", "model": "m2"},
        "feedback": {"rating": -1, "comment": f"Reach me at bob{i}@example.net"},
        "metadata": {"customer": f"c{i}@shop.example", "tier": "gold"},
    }  # fmt: skip


def _stream(path: Path, start: datetime) -> tuple[Path, list[dict[str, Any]]]:
    events = [_event(i, start + timedelta(seconds=i)) for i in range(N)]
    lines = [orjson.dumps(e) for e in events] + [BAD_JSON, BAD_BYTES]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path, events


def _config(path: Path, **sections: Any) -> Path:
    path.write_text(yaml.safe_dump(sections))
    return path


def _replay(tmp_path: Path, start: datetime, **sections: Any) -> list[dict[str, Any]]:
    events, originals = _stream(tmp_path / "events.jsonl", start)
    config = _config(tmp_path / "vigil.yaml", **sections)
    done = _cli_replay(tmp_path / "data", events, "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["stored"] == N and summary["rejected"] == 2
    return originals


_TEXT = "prompt, request, response, shadow_response, metadata"


def _stored(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    store = EmbeddedStore(data_dir)
    try:
        return {
            "events": store.query(
                f"SELECT event_id, {_TEXT} FROM vigil.events FINAL ORDER BY event_id"
            ),
            "checks": store.query(
                "SELECT event_id, pii_kinds, failed FROM vigil.checks FINAL ORDER BY event_id"
            ),
            "incidents": store.query(
                "SELECT event_id, category FROM vigil.incidents FINAL WHERE risk_type = 'pii'"
            ),
            "feedback": store.query("SELECT event_id, comment FROM vigil.feedback FINAL"),
            "dead": store.query(
                "SELECT reason, detail, raw_b64 FROM vigil.dead_letters FINAL ORDER BY position"
            ),
        }
    finally:
        store.close()


def _texts(row: dict[str, Any]) -> list[str]:
    return [row["prompt"], row["request"], row["response"], row["shadow_response"],
            *row["metadata"].values()]  # fmt: skip


@pytest.mark.parametrize("mode", ["placeholder", "hash"])
def test_replay_stores_no_pii_but_still_flags_it(tmp_path: Path, mode: str) -> None:
    _replay(tmp_path, datetime.now(UTC) - timedelta(hours=1), privacy={"redact_pii": mode})
    got = _stored(tmp_path / "data")

    assert len(got["events"]) == N
    for row in got["events"]:
        for text in _texts(row):
            assert pii_spans(text) == [], (row["event_id"], text)
        orjson.loads(row["request"])  # still JSON
        tag = "<EMAIL>" if mode == "placeholder" else "<EMAIL:"
        assert tag in row["prompt"] or tag in row["request"]
        assert "<CARD" in row["prompt"] and "<IBAN" in row["prompt"]
        assert "<PHONE" in row["shadow_response"] and "<EMAIL" in row["metadata"]["customer"]
        assert row["metadata"]["tier"] == "gold"  # no PII: untouched
    assert len(got["feedback"]) == N
    assert all(pii_spans(f["comment"]) == [] and "<EMAIL" in f["comment"]
               for f in got["feedback"])  # fmt: skip
    # The PII check ran on the raw response: the flag and the incidents are stored.
    assert all(set(c["pii_kinds"]) == {"card", "email"} for c in got["checks"])
    assert all("pii" in c["failed"] for c in got["checks"])
    assert {(i["category"]) for i in got["incidents"]} == {"card", "email"}
    assert len(got["incidents"]) == 2 * N
    # Dead letters: valid UTF-8 redacted as text, other bytes kept as they came.
    letters = {base64.b64decode(d["raw_b64"]) for d in got["dead"]}
    assert BAD_BYTES in letters
    [text] = [raw.decode() for raw in letters if raw != BAD_BYTES]
    assert pii_spans(text) == [] and "<EMAIL" in text and orjson.loads(text)["event_id"]
    assert all(pii_spans(d["detail"]) == [] for d in got["dead"])


def test_keep_stores_the_text_unchanged(tmp_path: Path) -> None:
    originals = _replay(tmp_path, datetime.now(UTC) - timedelta(hours=1))
    got = _stored(tmp_path / "data")
    by_id = {row["event_id"]: row for row in got["events"]}
    for event in originals:
        row = by_id[event["event_id"]]
        assert row["response"] == event["response"]["content"]
        assert row["shadow_response"] == event["shadow"]["content"]
        assert row["metadata"] == event["metadata"]
        assert orjson.loads(row["request"]) == event["request"]
        assert CARD in row["prompt"]
    assert {base64.b64decode(d["raw_b64"]) for d in got["dead"]} == {BAD_JSON, BAD_BYTES}


def test_raw_text_expires_before_the_row(tmp_path: Path) -> None:
    # Events 10 days old, raw text kept 5: once ClickHouse applies the TTL (a merge), the
    # text columns are back at their defaults while the rows and their checks remain.
    _replay(
        tmp_path,
        datetime.now(UTC) - timedelta(days=10),
        privacy={"raw_text_days": 5},
        events={"max_past_s": 30 * 86_400.0},
    )
    store = EmbeddedStore(tmp_path / "data")
    try:
        ddl = store.query("SHOW CREATE TABLE vigil.events")[0]["statement"]
        text_ttl = "TTL toDateTime(ts) + toIntervalDay(5)"
        for column in ("prompt", "request", "response", "shadow_response"):
            assert f"`{column}` String {text_ttl}," in ddl, ddl
        assert f"`metadata` Map(String, String) {text_ttl}," in ddl
        assert ddl.count(text_ttl) == 5  # no other column
        assert "TTL toDateTime(ts) + toIntervalDay(90)" in ddl  # the row's own
        feedback = store.query("SHOW CREATE TABLE vigil.feedback")[0]["statement"]
        assert f"`comment` String {text_ttl}," in feedback
        dead = store.query("SHOW CREATE TABLE vigil.dead_letters")[0]["statement"]
        assert "`raw_b64` String TTL toDateTime(received_at) + toIntervalDay(5)," in dead
        ingest = store.query("SHOW CREATE TABLE vigil.ingest")[0]["statement"]
        assert "TTL" not in ingest
        for table in ("events", "feedback"):
            store.command(f"OPTIMIZE TABLE vigil.{table} FINAL")
        rows = store.query(f"SELECT event_id, route, {_TEXT} FROM vigil.events FINAL")
        comments = store.query("SELECT comment FROM vigil.feedback FINAL")
        [checks] = store.query("SELECT count() AS n FROM vigil.checks FINAL")
    finally:
        store.close()
    assert len(rows) == N and int(checks["n"]) == N
    for row in rows:
        assert row["route"] == "support/billing"
        assert _texts(row) == ["", "", "", ""], row
    assert [c["comment"] for c in comments] == [""] * N


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "VIGIL_LOG_LEVEL": "WARNING"},
        timeout=120,
        check=False,
    )


def test_raw_text_outliving_its_rows_stops_start_up(tmp_path: Path) -> None:
    config = _config(tmp_path / "vigil.yaml", store={"ttl_days": 30}, privacy={"raw_text_days": 31})
    done = _cli("config", "show", "--config", str(config))
    assert done.returncode == 2
    assert "privacy.raw_text_days (31) must not exceed store.ttl_days (30)" in done.stderr
    fine = _config(tmp_path / "ok.yaml", store={"ttl_days": 30}, privacy={"raw_text_days": 30})
    assert _cli("config", "show", "--config", str(fine)).returncode == 0
    unknown = _config(tmp_path / "typo.yaml", privacy={"redact": "hash"})
    typo = _cli("config", "show", "--config", str(unknown))
    assert typo.returncode == 2 and "privacy.redact" in typo.stderr


def test_the_judge_is_never_sent_what_the_store_may_not_keep(tmp_path: Path) -> None:
    def settings(privacy: str, judge: str) -> Any:
        return load_settings(overrides={
            "store": {"data_dir": str(tmp_path / "data")},
            "judge": {"backoff_s": 0.001, "max_retries": 0, "redact_pii": judge},
            "privacy": {"redact_pii": privacy},
        })  # fmt: skip

    # Raised to the privacy mode where that hides more, never lowered.
    assert settings("hash", "auto").judge_settings().pii_redaction() == "hash"
    assert settings("placeholder", "keep").judge_settings().pii_redaction() == "placeholder"
    assert settings("hash", "placeholder").judge_settings().pii_redaction() == "placeholder"
    assert settings("keep", "keep").judge_settings().pii_redaction() == "keep"

    s = settings("placeholder", "keep")
    rec = Recorder(_reply)
    scorer = JudgeScorer(s.judge_settings(), http_client_factory=rec.factory())
    event = make_event(1, prompt=PII_PROMPT, response=PII_RESPONSE)
    (result,) = asyncio.run(scorer.score([Job(event)]))
    assert result.error is None and rec.bodies
    for body in rec.bodies:
        for message in body["messages"]:
            assert pii_spans(message["content"]) == [], message["content"]
    # The pipeline's judge is built from judge_settings(): the same identity (cache key).
    store = EmbeddedStore(tmp_path / "data")
    try:
        built = SCORERS["judge"][1](s, store)
    finally:
        store.close()
    assert isinstance(built, JudgeScorer)
    assert built.identity == scorer.identity != JudgeScorer(s.judge).identity


@pytest.mark.integration
def test_worker_stores_no_pii_and_keeps_raw_text_shorter(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any
) -> None:
    privacy = {"redact_pii": "placeholder", "raw_text_days": 3}
    settings = load_settings(
        overrides=stream_overrides(dev_broker, tmp_path / "data", privacy=privacy)
    )
    ensure_topics(settings)
    events, _ = _stream(tmp_path / "events.jsonl", datetime.now(UTC) - timedelta(hours=1))
    lines = [line for line in events.read_bytes().split(b"\n") if line]
    sent = produce_lines(settings, lines)
    late = orjson.dumps({"event_id": "late-1", "ts": datetime.now(UTC).isoformat(),
                         "rating": 1, "comment": "now mail late@example.com"})  # fmt: skip
    sent_feedback = produce_lines(settings, [late], topic=settings.kafka.feedback_topic)
    assert sent["failed"] == sent_feedback["failed"] == 0

    worker = start_worker(settings)
    wait_consumed(settings, {**sent["end_offsets"], **sent_feedback["end_offsets"]}, worker)
    dlq = read_topic(settings, settings.kafka.dlq_topic, 2)
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()

    got = _stored(tmp_path / "data")
    assert len(got["events"]) == N
    for row in got["events"]:
        assert all(pii_spans(text) == [] for text in _texts(row)), row
        assert "<CARD>" in row["prompt"]
    assert all(set(c["pii_kinds"]) == {"card", "email"} for c in got["checks"])
    assert len(got["feedback"]) == N + 1
    assert all(pii_spans(f["comment"]) == [] for f in got["feedback"])
    assert [f["comment"] for f in got["feedback"] if f["event_id"] == "late-1"] == [
        "now mail <EMAIL>"
    ]
    stored_letters = {base64.b64decode(d["raw_b64"]) for d in got["dead"]}
    assert BAD_BYTES in stored_letters and BAD_JSON not in stored_letters
    # The DLQ topic is the producer's channel for fixing and resending: original bytes.
    assert {record.value for record in dlq} == {BAD_JSON, BAD_BYTES}
    store = EmbeddedStore(tmp_path / "data")
    try:
        ddl = store.query("SHOW CREATE TABLE vigil.events")[0]["statement"]
    finally:
        store.close()
    assert "`prompt` String TTL toDateTime(ts) + toIntervalDay(3)," in ddl
