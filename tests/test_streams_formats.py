"""OTLP made by the OpenTelemetry SDK, on a real tansu broker, into the real worker: the
mapped events are stored, a corrupt record goes to the DLQ with its reason, a fetch of
only non-GenAI spans is committed, and `vigil replay --format otlp_proto` of the same
records makes the same decisions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_settings, write_settings_file
from monitor.store.embedded import EmbeddedStore
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.produce import produce_lines
from tests.fixtures.broker import read_topic, stream_overrides, wait_consumed
from tests.fixtures.otel import (
    genai_ids,
    json_record,
    proto_record,
    request_spans,
    write_proto_file,
)
from tests.fixtures.store import decision_rows

pytestmark = pytest.mark.integration

_PROTO, _JSON, _NOISE = "otel.spans.proto", "otel.spans.json", "otel.spans.noise"
#: Toxicity (a linear model shipped in a wheel) makes decisions to compare; half the
#: events are sampled out by rate, every span without content by `no_content`.
_EXTRA = {
    "kafka": {"input_topics": {_PROTO: "otlp_proto", _JSON: "otlp_json", _NOISE: "otlp_proto"}},
    "toxicity": {"enabled": True, "backend": "profanity-check"},
    "sampling": {"rates": {"toxicity": 0.5}},
}


def _rows(data_dir: Path, sql: str) -> list[dict[str, object]]:
    store = EmbeddedStore(data_dir)
    try:
        return store.query(sql)
    finally:
        store.close()


def test_otlp_topics_through_the_worker_and_replay_agree(
    dev_broker: DevBroker, tmp_path: Path, start_worker: object
) -> None:
    live = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "live", **_EXTRA))
    proto_traces, json_traces = request_spans(40), request_spans(20)
    proto = [proto_record(t) for t in proto_traces]
    corrupt = [b"\xff\xff\xff not an OTLP export", b'{"resourceSpans": 7}']
    ensure_topics(live)
    sent = produce_lines(live, [*proto, corrupt[0]], _PROTO)
    sent_json = produce_lines(live, [*(json_record(t) for t in json_traces), corrupt[1]], _JSON)
    worker = start_worker(live)  # type: ignore[operator]
    wait_consumed(live, {**sent["end_offsets"], **sent_json["end_offsets"]}, worker)

    # Only non-GenAI spans, fetched once everything else is committed: a fetch that
    # decodes to no event at all must still have its offsets committed.
    noise = produce_lines(live, [proto_record(t) for t in request_spans(5, genai=False)], _NOISE)
    wait_consumed(live, noise["end_offsets"], worker, timeout_s=60)
    assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()

    # Every GenAI span is one event, under its trace and span id; the rest were skipped.
    wanted = genai_ids(proto_traces) | genai_ids(json_traces)
    assert len(wanted) == 120
    events = _rows(
        tmp_path / "live",
        "SELECT event_id, model, app, metadata['content_captured'] AS captured, "
        "metadata['gen_ai.response.id'] AS response_id FROM vigil.events FINAL",
    )
    assert {str(e["event_id"]): e["captured"] == "true" for e in events} == wanted
    assert {(e["model"], e["app"]) for e in events} == {("acme", "support-bot")}
    # Without captured content the text checks are not applicable (NULL), not "empty".
    checks = _rows(
        tmp_path / "live",
        "SELECT event_id, empty, refusal, json_ok, failed FROM vigil.checks FINAL",
    )
    for row in checks:
        if wanted[str(row["event_id"])]:
            assert row["empty"] == 0 and row["refusal"] == 0
        else:
            assert (row["empty"], row["refusal"], row["json_ok"], row["failed"]) == (
                None,
                None,
                None,
                [],
            )
    summary = [
        json.loads(line)
        for line in worker.log_path.read_text().splitlines()
        if '"worker stopped"' in line
    ]
    assert summary[-1]["skipped_spans"] == 40 + 20 + 5  # one HTTP root span per trace

    # Corrupt records: dead-lettered with a reason, in the store and on the DLQ topic.
    dead = _rows(tmp_path / "live", "SELECT reason FROM vigil.dead_letters FINAL")
    assert [d["reason"] for d in dead] == ["invalid_otlp", "invalid_otlp"]
    records = read_topic(live, live.kafka.dlq_topic, 2)
    assert sorted(r.value for r in records) == sorted(corrupt)
    assert {dict(r.headers)["vigil.reason"] for r in records} == {b"invalid_otlp"}
    assert {dict(r.headers)["vigil.source.topic"] for r in records} == {
        _PROTO.encode(),
        _JSON.encode(),
    }

    # `vigil replay --format otlp_proto` of the same records: the same decisions.
    replayed = load_settings(overrides=stream_overrides(dev_broker, tmp_path / "replay", **_EXTRA))
    config = write_settings_file(replayed, tmp_path / "replay.yaml")
    path = write_proto_file(tmp_path / "spans.binpb", [*proto, corrupt[0]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--config", str(config), "replay", str(path),
         "--format", "otlp_proto", "--json"],
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    replay_summary = json.loads(done.stdout)
    assert replay_summary["skipped_spans"] == 40
    assert replay_summary["rejected_by_reason"] == {"invalid_otlp": 1}
    from_replay = decision_rows(tmp_path / "replay")
    proto_ids = set(genai_ids(proto_traces))
    from_live = [d for d in decision_rows(tmp_path / "live") if d["event_id"] in proto_ids]
    assert len(from_replay) == 80
    assert from_live == from_replay
    kinds = {(d["decision"], d["reason"].split(":")[0]) for d in from_replay}
    assert {("scored", "rate"), ("sampled_out", "rate"), ("sampled_out", "no_content")} <= kinds
