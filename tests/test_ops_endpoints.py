"""The worker's /healthz, /readyz and /metrics, against the real parts.

A real worker subprocess reads a real tansu broker and writes, through the server backend,
to a chDB store served by Vigil's HTTP endpoint (as in `test_store_outage`), so the test
can take the store away. The metrics are parsed by prometheus_client's own parser and
compared with what was produced and what the store holds; the outage must turn /readyz
to 503 with a reason, and back to 200 once the store returns.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import OpsSettings, load_settings, write_settings_file
from monitor.errors import ConfigError
from monitor.ops import BrokerState, readiness
from monitor.pipeline.health import Health
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import serve_store
from streams.admin import ensure_topics
from streams.broker import DevBroker
from streams.consumer_stats import parse_stats
from streams.produce import produce_lines
from tests.fixtures.broker import WorkerProcess, stream_overrides, wait_consumed
from vigil.traffic import TrafficSpec, generate_lines

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


def _samples(base: str) -> Samples:
    status, body, ctype = _get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


def _wait(condition: Any, what: str, worker: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.alive, f"worker exited while waiting for {what}:\n{worker.log_tail()}"
        try:
            found = condition()
        except (urllib.error.URLError, ConnectionError):
            found = None  # the web server is not up yet
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{worker.log_tail()}")


def _ready(base: str, want: int) -> dict[str, Any] | None:
    status, body, _ = _get(base + "/readyz")
    return json.loads(body) if status == want else None


@pytest.mark.integration
def test_endpoints_report_ingest_decisions_and_a_store_outage(
    dev_broker: DevBroker, tmp_path: Path, start_worker: Any
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    store.migrate()
    endpoint = serve_store(store)
    port, key = endpoint.port, endpoint.writer_key
    try:
        overrides = stream_overrides(
            dev_broker,
            tmp_path / "unused",
            store={"backend": "server", "url": endpoint.writer_url, "retry_max_delay_s": 1.0},
            ops={"stats_interval_s": 0.5},
            toxicity={"enabled": True},
            sampling={"rates": {"toxicity": 0.5}, "budget_per_minute": {"toxicity": 1e9}},
        )
        settings = load_settings(overrides=overrides)
        ensure_topics(settings)
        lines = list(generate_lines(TrafficSpec(n=1_000, malformed_share=0.02, seed=5)))
        bad = len(lines) - 1_000  # the malformed ones come on top of the n events
        assert bad > 5
        sent = produce_lines(settings, lines)
        worker = start_worker(settings)
        base = worker.ops_url
        _wait(lambda: _get(base + "/healthz")[0] == 200, "/healthz", worker)
        wait_consumed(settings, sent["end_offsets"], worker)

        def settled() -> Samples | None:
            s = _samples(base)
            pending = s.get(
                ("vigil_decisions_total", (("decision", "pending"), ("scorer", "toxicity")))
            )
            done = sum(_labelled(s, "vigil_scorer_outcomes_total", "outcome").values())
            lag = _labelled(s, "vigil_consumer_lag", "partition")
            return s if pending and done == pending and lag and not any(lag.values()) else None

        samples = _wait(settled, "scorer queues drained and zero lag", worker)
        assert _ready(base, 200) is not None
        assert samples[("vigil_events_read_total", ())] == len(lines)
        assert samples[("vigil_events_stored_total", ())] == len(lines) - bad
        assert sum(_labelled(samples, "vigil_dead_letters_total", "reason").values()) == bad
        assert samples[("vigil_broker_up", ())] == 1.0
        assert samples[("vigil_store_up", ())] == 1.0
        assert ("vigil_stage_queue_depth", (("scorer", "toxicity"),)) in samples
        assert samples[("vigil_alerts_firing", (("rule", "helpfulness_drop"),))] == 0.0
        rows = store.query(
            "SELECT decision, count() AS n FROM vigil.decisions FINAL"
            " WHERE scorer = 'toxicity' GROUP BY decision"
        )
        stored = {row["decision"]: int(row["n"]) for row in rows}
        decided = _labelled(samples, "vigil_decisions_total", "decision")
        outcomes = _labelled(samples, "vigil_scorer_outcomes_total", "outcome")
        # Pending at ingest, then scored by the stage: the store keeps the final one.
        final = {k: v for k, v in decided.items() if k != "pending"}
        for outcome, n in outcomes.items():
            final[outcome] = final.get(outcome, 0) + n
        assert stored == final and stored.get("scored", 0) > 0 and stored.get("sampled_out", 0) > 0

        endpoint.close()  # the outage begins; new events make the worker write
        produce_lines(settings, list(generate_lines(TrafficSpec(n=200, seed=6))))
        down = _wait(lambda: _ready(base, 503), "/readyz 503", worker)
        assert {"store_unreachable", "backpressured"} <= set(down["reasons"])
        assert down["store"]["store_error"] and _get(base + "/healthz")[0] == 200

        endpoint = serve_store(store, port=port, writer_key=key)  # the store is back
        up = _wait(lambda: _ready(base, 200), "/readyz 200 again", worker)
        assert up["reasons"] == [] and up["broker"]["status"] == "up"
        after = _samples(base)
        assert after[("vigil_store_write_retries_total", ())] >= 1
        assert worker.signal(signal.SIGTERM) == 0, worker.log_tail()
    finally:
        endpoint.close()
        store.close()


@pytest.mark.integration
def test_a_taken_port_is_one_clear_error(dev_broker: DevBroker, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            overrides=stream_overrides(dev_broker, tmp_path / "data", ops={"port": port})
        )
        ensure_topics(settings)
        worker = WorkerProcess(settings, tmp_path)
        write_settings_file(settings, worker.config)  # as is: not `start`, which picks a port
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        result = subprocess.run(
            [sys.executable, "-m", "vigil.cli", "worker"],
            env={**env, "VIGIL_CONFIG": str(worker.config), "HF_HUB_OFFLINE": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("vigil: error:")]
    assert errors == [
        f"vigil: error: cannot serve the operations endpoints on 127.0.0.1:{port}:"
        " address already in use (set ops.port, or ops.enabled: false)"
    ]


def test_a_bind_beyond_loopback_needs_consent() -> None:
    assert OpsSettings().bind == "127.0.0.1"
    with pytest.raises(ConfigError, match=r"ops.bind '0\.0\.0\.0' is not loopback.*allow_remote"):
        load_settings(overrides={"ops": {"bind": "0.0.0.0"}})
    assert load_settings(overrides={"ops": {"bind": "0.0.0.0", "allow_remote": True}})
    assert load_settings(overrides={"ops": {"bind": "::1"}}).ops.bind == "::1"
    assert load_settings(overrides={"ops": {"bind": "0.0.0.0", "enabled": False}})


def test_readiness_names_each_failing_check() -> None:
    health, broker = Health(), BrokerState()
    assert readiness(health, broker)[1]["reasons"] == ["broker_connecting"]
    broker.connected()
    assert readiness(health, broker)[0] is True
    health.store_failed("connection refused")
    ready, body = readiness(health, broker)
    assert not ready and body["reasons"] == ["store_unreachable", "backpressured"]
    health.store_recovered()
    broker.report({"localhost:9092/1": "DOWN"}, {})
    ready, body = readiness(health, broker)
    assert not ready and body["reasons"] == ["broker_unreachable"]
    assert "localhost:9092/1 DOWN" in body["broker"]["error"]


def test_consumer_statistics_give_lag_of_owned_partitions_only() -> None:
    raw = json.dumps(
        {
            "brokers": {
                "127.0.0.1:9092/bootstrap": {"state": "INIT"},
                "127.0.0.1:9092/1": {"state": "UP"},
            },
            "topics": {
                "vigil.events": {
                    "partitions": {
                        "0": {"consumer_lag": 12, "fetch_state": "active"},
                        "1": {"consumer_lag": 3, "fetch_state": "none"},
                        "2": {"consumer_lag": -1, "fetch_state": "active"},
                        "-1": {"consumer_lag": -1, "fetch_state": "none"},
                    }
                }
            },
        }
    )
    parsed = parse_stats(raw)
    assert parsed is not None
    brokers, lag = parsed
    assert lag == {("vigil.events", 0): 12}
    assert brokers["127.0.0.1:9092/1"] == "UP"
    assert parse_stats("not json") is None and parse_stats("{}") is None
