"""The embedded store's HTTP endpoint is read-only, guarded and bounded: writes, SET,
table functions, comment tricks and oversized or bomb bodies are refused over real HTTP
against real chDB, `vigil.events` stays intact, and Grafana-style reads still work."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import orjson
import pytest

from monitor.errors import StoreError
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import EndpointHandle, serve_store
from monitor.store.server import ServerStore
from tests.fixtures import rows as fixture_rows
from tests.test_store_backends import NOW, make_events


def call(
    url: str, query: str | None = None, data: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    full = url if "?" in url else f"{url}/"
    if query is not None:
        full = f"{url}/?{urlencode({'query': query})}"
    request = urllib.request.Request(full, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def filled(embedded_store: EmbeddedStore) -> EmbeddedStore:
    embedded_store.insert("events", [fixture_rows.event_row(e, NOW) for e in make_events(10)])
    return embedded_store


def events_count(store: EmbeddedStore) -> int:
    return int(store.raw("SELECT count() FROM vigil.events FINAL").decode())


REFUSED = [
    "DROP TABLE vigil.events",
    "INSERT INTO vigil.events (event_id) VALUES ('x')",
    "TRUNCATE TABLE vigil.events",
    "ALTER TABLE vigil.events DELETE WHERE 1",
    "SYSTEM DROP MARK CACHE",
    "SET max_execution_time = 0",
    "SET readonly = 0",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
    "SELECT * FROM s3('http://x/y.csv')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM numbers(1), file('/etc/passwd', 'LineAsString')",
    "SELECT 1 # comment\n; DROP TABLE vigil.events",
    "# SELECT\nDROP TABLE vigil.events",
    "/* SELECT */ DROP TABLE vigil.events",
    "-- SELECT\nDROP TABLE vigil.events",
    "SELECT 1 /* */ FROM file /* x */ ('/etc/passwd', 'LineAsString')",
    "SELECT 1; DROP TABLE vigil.events",
    "SELECT 1 /* unterminated",
    "SELECT * FROM system.one INTO OUTFILE '/tmp/vigil-out.txt'",
    "SELECT 1 SETTINGS max_execution_time = 0",
    "SELECT 1 SETTINGS readonly = 0",
    "WITH 1 AS x INSERT INTO vigil.events (event_id) VALUES ('x')",
]


@pytest.mark.parametrize("query", REFUSED)
def test_writes_settings_and_table_functions_are_refused(
    served_store: EndpointHandle, filled: EmbeddedStore, query: str
) -> None:
    for method_data in (None, b""):  # GET, and POST with the statement in the URL
        status, headers, body = call(served_store.url, query, method_data)
        assert status == 500, body
        assert headers["X-ClickHouse-Exception-Code"] in ("62", "164", "497"), body
        assert body.startswith(b"Code: ")
    # The statement in the POST body too.
    status, _, body = call(served_store.url, None, query.encode())
    assert status == 500, body
    assert events_count(filled) == 10
    assert filled.raw("EXISTS TABLE vigil.events") == b"1\n"


def test_engine_itself_is_read_only_for_readers(served_store: EndpointHandle) -> None:
    # Whatever got past the text check: the readers' session is readonly in ClickHouse.
    status, _, body = call(served_store.url, "SELECT getSetting('readonly')")
    assert status == 200 and body == b"2\n"
    status, _, body = call(served_store.url, "SELECT getSetting('max_execution_time')")
    assert status == 200 and body.strip() == b"30"


def test_oversized_and_bomb_bodies_are_refused(embedded_store: EmbeddedStore) -> None:
    endpoint = serve_store(embedded_store, max_body_bytes=64 * 1024, max_query_bytes=4096)
    try:
        status, headers, _ = call(endpoint.url, None, b"SELECT 1 " + b" " * 70_000)
        assert status == 413 and headers["X-ClickHouse-Exception-Code"] == "307"
        bomb = gzip.compress(b"SELECT 1 " + b" " * 50_000_000)  # ~50 KB -> 50 MB
        assert len(bomb) < 64 * 1024
        status, headers, body = call(endpoint.url, None, bomb, **{"Content-Encoding": "gzip"})
        assert status == 413, body
        status, _, _ = call(endpoint.url, "SELECT 1 AS " + "x" * 5000)
        assert status == 413
        assert call(endpoint.url, "SELECT 1")[2] == b"1\n"  # still serving
    finally:
        endpoint.close()


def test_grafana_and_clickhouse_connect_reads_still_work(
    served_store: EndpointHandle, filled: EmbeddedStore
) -> None:
    query = "SELECT route, count() AS n FROM events GROUP BY route HAVING n >= {min:UInt32}"
    params = urlencode(
        {"query": query, "default_format": "JSON", "database": "vigil", "param_min": "0"}
    )
    status, _, body = call(served_store.url + f"/?{params}")
    assert status == 200, body
    assert sum(int(row["n"]) for row in orjson.loads(body)["data"]) == 10
    status, _, body = call(served_store.url, "SELECT sum(number) FROM numbers(10) FORMAT JSON")
    assert status == 200 and orjson.loads(body)["data"] == [{"sum(number)": 45}]
    reader = ServerStore(served_store.url, "default", "", "vigil", 90)
    try:
        assert reader.query("SELECT count() AS n FROM vigil.events FINAL") == [{"n": 10}]
        with pytest.raises(StoreError, match="164"):
            reader.command("DROP TABLE vigil.events")
    finally:
        reader.close()
    writer = ServerStore(served_store.writer_url, "default", "", "vigil", 90)
    try:
        writer.migrate()  # Vigil's own idempotent schema statements pass for the writer
        writer.insert("events", [fixture_rows.event_row(e, NOW) for e in make_events(3)])
        writer.command("CREATE TABLE IF NOT EXISTS vigil.t_w (a UInt8) ENGINE = Memory")
        writer.command("INSERT INTO vigil.t_w VALUES (7)")
        assert filled.raw("SELECT sum(a) FROM vigil.t_w") == b"7\n"
        with pytest.raises(StoreError, match="164"):
            writer.command("DROP TABLE vigil.events")
    finally:
        writer.close()
    assert events_count(filled) == 10  # the same 3 event ids again: deduplicated


def test_token_is_required_beyond_loopback_and_checked(embedded_store: EmbeddedStore) -> None:
    with pytest.raises(StoreError, match=r"store\.http_token"):
        serve_store(embedded_store, "0.0.0.0")
    endpoint = serve_store(embedded_store, "0.0.0.0", password="s3cret-token")
    try:
        url = endpoint.url
        assert call(url, "SELECT 1")[0] == 403
        assert call(url, "SELECT 1", None, **{"X-ClickHouse-Key": "wrong"})[0] == 403
        assert call(url, "SELECT 1", None, **{"X-ClickHouse-Key": "s3cret-token"})[2] == b"1\n"
        assert call(url, "SELECT 1", Authorization="Bearer s3cret-token")[2] == b"1\n"
        good = ServerStore(url, "default", "s3cret-token", "vigil", 90)
        assert good.query("SELECT 1 AS one") == [{"one": 1}]
        good.close()
    finally:
        endpoint.close()


def test_browser_origins_are_refused_unless_allowed(embedded_store: EmbeddedStore) -> None:
    endpoint = serve_store(embedded_store, allowed_origins=("https://grafana.example",))
    try:
        assert call(endpoint.url, "SELECT 1", Origin="https://evil.example")[0] == 403
        assert call(endpoint.url, "SELECT 1", Origin="https://grafana.example")[0] == 200
    finally:
        endpoint.close()


def test_a_slow_read_does_not_hold_the_ingest_lock(embedded_store: EmbeddedStore) -> None:
    endpoint = serve_store(embedded_store, max_execution_s=2)
    slow = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1"
    answers: list[tuple[int, dict[str, str], bytes]] = []
    thread = threading.Thread(target=lambda: answers.append(call(endpoint.url, slow)))
    try:
        thread.start()
        time.sleep(0.3)
        started = time.perf_counter()
        embedded_store.insert("events", [fixture_rows.event_row(e, NOW) for e in make_events(2)])
        assert time.perf_counter() - started < 1.0  # the readers have their own chDB session
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert answers[0][0] == 500 and answers[0][1]["X-ClickHouse-Exception-Code"] == "159"
    finally:
        endpoint.close()
