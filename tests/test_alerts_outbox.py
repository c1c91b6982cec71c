"""The notification outbox, through `vigil replay` as a user runs it, on a real loopback webhook.

A webhook that is down leaves the notices queued in table ``alerts`` (the replay still
stores everything and exits 0); the next process sends each queued notice exactly once,
and a third sends nothing. A webhook that never answers does not hold ingestion up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitor.store.embedded import EmbeddedStore
from vigil.traffic import TrafficSpec, demo_incidents, generate_lines

N = 4000


class _Hook:
    """A loopback webhook: ``mode`` is ``down`` (503), ``up`` (200) or ``hang`` (no answer
    until ``release`` is set). Records every body it was sent and every one it took."""

    def __init__(self) -> None:
        self.mode = "up"
        self.tried: list[dict[str, Any]] = []
        self.took: list[dict[str, Any]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.tried.append(body)
                if outer.mode == "hang":
                    outer.release.wait()
                status = 503 if outer.mode == "down" else 200
                if status == 200:
                    outer.took.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/T0KEN"


@pytest.fixture
def hook() -> Iterator[_Hook]:
    h = _Hook()
    thread = threading.Thread(target=h.httpd.serve_forever, daemon=True)
    thread.start()
    yield h
    h.release.set()
    h.httpd.shutdown()
    h.httpd.server_close()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TrafficSpec(n=N, seed=5)
    spec.incidents = demo_incidents(spec.start, spec.interval_s, N)
    path = tmp_path_factory.mktemp("outbox") / "traffic.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in generate_lines(spec)))
    return path


def _replay(
    data_dir: Path, events: Path, hook: _Hook, **alerts: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VIGIL_LOG_LEVEL": "WARNING",
        "VIGIL_ALERTS__WEBHOOK_URL": hook.url,
        "VIGIL_ALERTS__NOTIFY_STDOUT": "false",
        "VIGIL_ALERTS__NOTIFY_RETRIES": "0",
        **{f"VIGIL_ALERTS__{k.upper()}": v for k, v in alerts.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--data-dir", str(data_dir), "replay", str(events),
         "--heuristics-only", "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


def _notices(data_dir: Path) -> dict[tuple[str, str], int]:
    """(alert_id, state) -> notified, for every stored transition that pages."""
    store = EmbeddedStore(data_dir)
    try:
        rows = store.query(
            "SELECT alert_id, state, notified FROM vigil.alerts FINAL "
            "WHERE state IN ('firing', 'resolved')"
        )
        events = store.query("SELECT count() AS n FROM vigil.events FINAL")[0]["n"]
    finally:
        store.close()
    assert int(events) == N
    return {(r["alert_id"], r["state"]): int(r["notified"]) for r in rows}


def test_a_down_webhook_leaves_notices_queued_and_the_next_run_sends_each_once(
    tmp_path: Path, traffic: Path, hook: _Hook
) -> None:
    data = tmp_path / "data"
    hook.mode = "down"
    first = _replay(data, traffic, hook, notify_drain_s="1", notify_retry_every_s="3600")
    assert first.returncode == 0, first.stderr
    queued = _notices(data)
    # The incidents page (firing at least), every notice was tried, none taken.
    assert any(state == "firing" for _, state in queued)
    assert set(queued.values()) == {2}, queued
    assert {(b["alert_id"], b["state"]) for b in hook.tried} == set(queued)
    assert hook.took == []
    assert "alert notices left queued" in first.stderr

    hook.mode = "up"
    second = _replay(data, traffic, hook)
    assert second.returncode == 0, second.stderr
    sent = _notices(data)
    assert set(sent) == set(queued)
    assert set(sent.values()) == {1}, sent
    taken = [(b["alert_id"], b["state"]) for b in hook.took]
    assert sorted(taken) == sorted(queued)  # each exactly once

    third = _replay(data, traffic, hook)
    assert third.returncode == 0, third.stderr
    assert len(hook.took) == len(taken)
    assert _notices(data) == sent


def test_a_webhook_that_never_answers_does_not_hold_ingestion(
    tmp_path: Path, traffic: Path, hook: _Hook
) -> None:
    data = tmp_path / "data"
    hook.mode = "hang"
    # An hour per call: delivery inline with ingestion would hold the replay for hours.
    done = _replay(data, traffic, hook, notify_timeout_s="3600", notify_drain_s="0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == N
    assert hook.tried and hook.took == []
    queued = _notices(data)
    assert queued and set(queued.values()) == {2}
