"""Results out: evaluation results as ``gen_ai.evaluation.result`` events over OTLP/HTTP,
received by a tiny local OTLP/HTTP server that decodes ``ExportLogsServiceRequest``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from monitor.children import free_port
from monitor.config import ResultsExportSettings, load_settings
from monitor.events import parse_event
from monitor.export import EVENT_NAME, OtlpResultsExporter, evaluation_records
from monitor.replay import replay_file
from monitor.scorers.base import Judgment, RiskIncident, Score, ScoreResult
from tests.fixtures.broker import NO_MODEL_SCORERS
from tests.fixtures.otel import genai_ids, proto_record, request_spans, write_proto_file


class Receiver:
    """Collects the log records POSTed to ``/v1/logs``; answers ``statuses`` in turn first."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.records: list[LogRecord] = []
        self.requests = 0
        self.statuses = list(statuses or [])
        self.service_names: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    assert self.path == "/v1/logs"
                    assert self.headers["Content-Type"] == "application/x-protobuf"
                    request = ExportLogsServiceRequest.FromString(body)
                    for resource_logs in request.resource_logs:
                        for kv in resource_logs.resource.attributes:
                            if kv.key == "service.name":
                                receiver.service_names.add(kv.value.string_value)
                        for scope_logs in resource_logs.scope_logs:
                            receiver.records.extend(scope_logs.log_records)
                answer = ExportLogsServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(statuses=[503]) as r:  # the first request is retried
        yield r


def _attributes(record: LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


def test_toxicity_scores_of_a_trace_replay_reach_the_collector_on_their_spans(
    tmp_path: Path, receiver: Receiver
) -> None:
    traces = request_spans(9)
    path = write_proto_file(tmp_path / "spans.binpb", [proto_record(t) for t in traces])
    settings = load_settings(
        overrides={
            "store": {"data_dir": str(tmp_path / "data")},
            **NO_MODEL_SCORERS,
            "toxicity": {"enabled": True, "backend": "profanity-check"},
            "export": {
                "otlp_endpoint": receiver.url,
                "flush_interval_s": 0.05,
                "retry_max_delay_s": 0.1,
                "service_name": "vigil-test",
            },
        }
    )
    summary = asyncio.run(replay_file(settings, path, "otlp_proto"))

    captured = {k for k, v in genai_ids(traces).items() if v}
    assert summary.stages["toxicity"]["exported"] == len(captured) == 9
    assert summary.stages["toxicity"]["export_dropped"] == 0
    assert receiver.requests >= 2  # a 503, then the retry
    assert receiver.service_names == {"vigil-test"}
    got = {}
    for record in receiver.records:
        assert record.event_name == EVENT_NAME
        assert record.time_unix_nano > 0
        got[f"{record.trace_id.hex()}-{record.span_id.hex()}"] = _attributes(record)
    assert set(got) == captured  # on the span each verdict is about
    labels = {}
    for attributes in got.values():
        assert attributes["gen_ai.evaluation.name"] == "toxicity"
        assert 0.0 <= attributes["gen_ai.evaluation.score.value"] <= 1.0
        assert attributes["gen_ai.response.id"].startswith("chatcmpl-")
        labels[attributes["gen_ai.response.id"]] = attributes["gen_ai.evaluation.score.label"]
    # answers 1, 4, 7 of the fixture are the insulting ones
    toxic = {k for k, v in labels.items() if v == "toxic"}
    assert toxic == {"chatcmpl-1", "chatcmpl-4", "chatcmpl-7"}
    assert set(labels.values()) == {"toxic", "not_toxic"}


def _event(metadata: dict[str, str]) -> Any:
    return parse_event(
        b'{"event_id": "e1", "ts": "2026-11-22T09:00:00Z", "model": "m",'
        b' "request": {"messages": [{"role": "user", "content": "q"}]},'
        b' "response": {"content": "a"}, "metadata": %s}' % json.dumps(metadata).encode()
    )


def test_judge_verdicts_carry_their_reasons_and_no_trace_without_one() -> None:
    judgment = Judgment(
        judge_version="j1", cache_key="k", judge_model="jm", rubric="support",
        rubric_version="1", template_hash="t", mode="pointwise", cascade="single",
        scores={"helpfulness": 0.25}, reasons={"helpfulness": "Does not answer the question."},
        overall=0.25, pair_winner="", pair_orders=(), pair_reasons=(), shadow_model="",
        cached=False, calls=1, repaired=False, prompt_tokens=1, completion_tokens=1, cost=0.0,
        latency_ms=1.0,
    )  # fmt: skip
    result = ScoreResult(
        "e1", scores=[Score("helpfulness", 0.25), Score("overall", 0.25)], judgment=judgment
    )
    records = evaluation_records(_event({"gen_ai.response.id": "r-9"}), "judge", result, 5)
    by_name = {_attributes(r)["gen_ai.evaluation.name"]: r for r in records}
    assert set(by_name) == {"judge.helpfulness", "judge.overall"}
    helpful = _attributes(by_name["judge.helpfulness"])
    assert helpful["gen_ai.evaluation.explanation"] == "Does not answer the question."
    assert helpful["gen_ai.evaluation.score.value"] == 0.25
    assert helpful["gen_ai.response.id"] == "r-9"
    assert helpful["vigil.event_id"] == "e1"
    assert "gen_ai.evaluation.score.label" not in helpful
    assert "gen_ai.evaluation.explanation" not in _attributes(by_name["judge.overall"])
    assert all(r.trace_id == b"" and r.span_id == b"" for r in records)  # not from a trace

    traced = _event({"trace_id": "ab" * 16, "span_id": "cd" * 8})
    toxic = ScoreResult("e1", [Score("toxicity", 0.9, "profanity")],
                        incidents=[RiskIncident("toxicity", "profanity", 0.9)])  # fmt: skip
    [record] = evaluation_records(traced, "toxicity", toxic, 5)
    assert (record.trace_id.hex(), record.span_id.hex()) == ("ab" * 16, "cd" * 8)
    assert _attributes(record)["gen_ai.evaluation.score.label"] == "toxic"


def test_an_unreachable_collector_drops_and_counts_and_never_blocks() -> None:
    settings = ResultsExportSettings(
        otlp_endpoint=f"http://127.0.0.1:{free_port()}/v1/logs",  # nothing listens
        queue_max=3,
        max_attempts=2,
        retry_max_delay_s=0.05,
        flush_interval_s=0.01,
        timeout_s=1.0,
        drain_timeout_s=5.0,
    )
    event = _event({})
    results = [(event, ScoreResult("e1", [Score("toxicity", 0.1)])) for _ in range(5)]

    async def run() -> OtlpResultsExporter:
        exporter = OtlpResultsExporter(settings)
        await exporter.start()
        exporter.stored("toxicity", results)  # 5 events, room for 3: 2 dropped at once
        exporter.stored("embedding", results)  # not an exported scorer
        assert exporter.dropped["toxicity"] == 2
        await exporter.stop()
        return exporter

    exporter = asyncio.run(run())
    assert exporter.stats("toxicity") == {"exported": 0, "export_dropped": 5}
    assert exporter.stats("embedding") == {"exported": 0, "export_dropped": 0}


def test_export_is_off_by_default_and_wants_an_http_url() -> None:
    assert not ResultsExportSettings().enabled
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"export\.otlp_endpoint"):
        load_settings(overrides={"export": {"otlp_endpoint": "grpc://collector:4317"}})
