"""`vigil dashboards push` against a local HTTP server that answers as Grafana's documented
HTTP API does (folders, data sources, dashboards/db, alerting provisioning), recording
every request and refusing the ones the API would refuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards.alert_rules import RULES
from dashboards.build import DASHBOARDS, DATASOURCE_TYPE, DATASOURCE_UID, GENERATED

TOKEN = "glsa_test-token"
_NO_DATA = {"Alerting", "NoData", "OK"}
_EXEC_ERR = {"OK", "Error", "Alerting"}


class FakeGrafana(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[tuple[str, str]] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.fail_next = 0  # answer this many requests with 503 first


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        g = self.server
        g.requests.append((method, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if g.fail_next:
            g.fail_next -= 1
            return self._reply(503, {"message": "unavailable"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "Unauthorized"})
        status, answer = self._route(method, self.path, body)
        self._reply(status, answer)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        g = self.server
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "folders"]:
            if method == "GET" and len(parts) == 3:
                found = g.folders.get(parts[2])
                return (200, found) if found else (404, {"message": "folder not found"})
            if method == "POST" and body.get("title") and body.get("uid"):
                g.folders[body["uid"]] = body
                return 200, body
        if parts[:3] == ["api", "datasources", "uid"]:
            uid = parts[3]
            if method == "GET":
                found = g.datasources.get(uid)
                return (200, found) if found else (404, {"message": "Data source not found"})
            if method == "PUT" and uid in g.datasources and _valid_datasource(body):
                g.datasources[uid] = body
                return 200, {"message": "Datasource updated"}
        if parts == ["api", "datasources"] and method == "POST" and _valid_datasource(body):
            g.datasources[body["uid"]] = body
            return 200, {"message": "Datasource added"}
        if parts == ["api", "dashboards", "db"] and method == "POST":
            board = body.get("dashboard") or {}
            if body.get("folderUid") not in g.folders or not board.get("uid"):
                return 400, {"message": "folder not found"}
            if board["uid"] in g.dashboards and not body.get("overwrite"):
                return 412, {"message": "version-mismatch"}
            g.dashboards[board["uid"]] = board
            g.versions[board["uid"]] = g.versions.get(board["uid"], 0) + 1
            version = g.versions[board["uid"]]
            return 200, {"status": "success", "uid": board["uid"], "version": version}
        if parts[:4] == ["api", "v1", "provisioning", "alert-rules"]:
            if method == "GET" and len(parts) == 5:
                found = g.rules.get(parts[4])
                return (200, found) if found else (404, {"message": "rule not found"})
            if method in ("POST", "PUT") and _valid_rule(body, g):
                if method == "PUT" and parts[4:] != [body["uid"]]:
                    return 400, {"message": "uid mismatch"}
                g.rules[body["uid"]] = body
                return (201 if method == "POST" else 200), body
        return 400, {"message": f"bad request {method} {path}"}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


def _valid_datasource(body: Any) -> bool:
    return bool(body and body.get("name") and body.get("type") and body.get("access"))


def _valid_rule(body: Any, g: FakeGrafana) -> bool:
    needed = ("title", "ruleGroup", "folderUID", "condition", "data", "for")
    if not body or any(not body.get(k) for k in needed) or body["folderUID"] not in g.folders:
        return False
    refs = {d["refId"] for d in body["data"]}
    return (
        body["condition"] in refs
        and body["noDataState"] in _NO_DATA
        and body["execErrState"] in _EXEC_ERR
    )


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _push(grafana: FakeGrafana, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", "dashboards", "push", "--url", grafana.url, *extra],
        capture_output=True, text=True, check=False,
        env={**os.environ, "GRAFANA_TOKEN": TOKEN, "CLICKHOUSE_PASSWORD": "s3cret",
             "VIGIL_LOG_LEVEL": "WARNING"},
    )  # fmt: skip


def test_push_creates_everything_then_updates_in_place(grafana: FakeGrafana) -> None:
    first = _push(grafana, "--datasource-url", "http://clickhouse:8123")
    assert first.returncode == 0, first.stderr
    assert set(grafana.folders) == {"vigil"}
    source = grafana.datasources[DATASOURCE_UID]
    assert source["type"] == DATASOURCE_TYPE
    assert source["jsonData"]["host"] == "clickhouse" and source["jsonData"]["port"] == 8123
    assert source["secureJsonData"]["password"] == "s3cret"
    assert "s3cret" not in first.stdout + first.stderr
    for spec in DASHBOARDS:
        committed = json.loads((GENERATED / f"{spec.uid}.json").read_text())
        assert grafana.dashboards[spec.uid] == committed
    assert set(grafana.rules) == {r.uid for r in RULES}
    assert "created folder vigil" in first.stdout
    assert f"created alert rule {RULES[0].uid}" in first.stdout

    grafana.requests.clear()
    second = _push(grafana, "--datasource-url", "http://clickhouse:8123")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert ("POST", "/api/folders") not in grafana.requests
    assert ("POST", "/api/v1/provisioning/alert-rules") not in grafana.requests
    assert {("PUT", f"/api/v1/provisioning/alert-rules/{r.uid}") for r in RULES} <= set(
        grafana.requests
    )
    assert all(v == 2 for v in grafana.versions.values())


def test_a_busy_grafana_is_retried_and_a_refusal_is_one_clear_line(
    grafana: FakeGrafana,
) -> None:
    grafana.fail_next = 2
    done = _push(grafana)
    assert done.returncode == 0, done.stderr
    assert set(grafana.dashboards) == {s.uid for s in DASHBOARDS}

    refused = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "dashboards", "push", "--url", grafana.url,
         "--token", "wrong"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("vigil: error: Grafana refused")
    assert "Traceback" not in refused.stderr
