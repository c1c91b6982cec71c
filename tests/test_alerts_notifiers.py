"""Notifiers: a real loopback HTTP server, retries on 5xx, no retries on 4xx, stdout lines."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.config import AlertSettings
from monitor.notifiers import build_notifiers, deliver
from monitor.notifiers.base import safe_target
from monitor.notifiers.slack import SlackNotifier
from monitor.notifiers.stdout import StdoutNotifier
from monitor.notifiers.webhook import WebhookNotifier

NOTICE: dict[str, Any] = {
    "alert_id": "abc123",
    "rule": "helpfulness_drop",
    "state": "firing",
    "severity": "critical",
    "segment_key": "model_version=ckpt-2",
    "message": "negative feedback 40% vs 5%",
    "confidence": 0.999,
    "onset": "2026-11-22T09:40:00Z",
    "command": "vigil alerts --examples abc123",
}


class _Server:
    """A loopback HTTP server answering from a script of status codes, recording bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[Any] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/SECRET-TOKEN"


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    srv = _Server(list(getattr(request, "param", [])))
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.mark.parametrize("server", [[500, 503]], indirect=True)
def test_webhook_retries_5xx_then_succeeds(server: _Server) -> None:
    async def go() -> dict[str, bool]:
        notifier = WebhookNotifier(server.url, timeout_s=5.0)
        try:
            return await deliver([notifier], NOTICE, retries=3, backoff_s=0.0)
        finally:
            await notifier.close()

    assert asyncio.run(go()) == {"webhook": True}
    assert len(server.bodies) == 3
    assert server.bodies[-1]["alert_id"] == "abc123" and server.bodies[-1]["source"] == "vigil"


@pytest.mark.parametrize("server", [[400]], indirect=True)
def test_webhook_does_not_retry_4xx(server: _Server, caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> dict[str, bool]:
        notifier = WebhookNotifier(server.url)
        try:
            return await deliver([notifier], NOTICE, retries=3, backoff_s=0.0)
        finally:
            await notifier.close()

    assert asyncio.run(go()) == {"webhook": False}
    assert len(server.bodies) == 1
    assert "SECRET-TOKEN" not in caplog.text  # the URL path (the secret) never reaches logs


@pytest.mark.parametrize("server", [[502, 502, 502]], indirect=True)
def test_retries_give_up_without_raising(server: _Server) -> None:
    async def go() -> dict[str, bool]:
        notifier = WebhookNotifier(server.url)
        try:
            return await deliver(
                [notifier, StdoutNotifier(io.StringIO())], NOTICE, retries=2, backoff_s=0.0
            )
        finally:
            await notifier.close()

    assert asyncio.run(go()) == {"webhook": False, "stdout": True}
    assert len(server.bodies) == 3


def test_unreachable_webhook_is_a_failed_delivery() -> None:
    async def go() -> dict[str, bool]:
        notifier = WebhookNotifier("http://127.0.0.1:9/x", timeout_s=1.0)  # discard port: refused
        try:
            return await deliver([notifier], NOTICE, retries=1, backoff_s=0.0)
        finally:
            await notifier.close()

    assert asyncio.run(go()) == {"webhook": False}


def test_slack_payload_is_slack_compatible(server: _Server) -> None:
    async def go() -> None:
        notifier = SlackNotifier(server.url)
        try:
            await notifier.send(NOTICE)
        finally:
            await notifier.close()

    asyncio.run(go())
    body = server.bodies[0]
    assert "helpfulness_drop" in body["text"] and "FIRING" in body["text"]
    assert body["blocks"][0]["type"] == "section"
    assert "vigil alerts --examples abc123" in json.dumps(body["blocks"])


def test_stdout_line_and_registry() -> None:
    out = io.StringIO()
    asyncio.run(StdoutNotifier(out).send(NOTICE))
    line = out.getvalue().strip()
    assert line.startswith("[FIRING critical] helpfulness_drop [model_version=ckpt-2]")
    assert "examples: vigil alerts --examples abc123" in line
    names = [n.name for n in build_notifiers(AlertSettings(webhook_url=SecretStr("http://127.0.0.1:1/x")))]
    assert names == ["stdout", "webhook"]
    assert build_notifiers(AlertSettings(notify_stdout=False)) == []
    assert safe_target("https://hooks.slack.com/services/T/B/SECRET") == "https://hooks.slack.com"
