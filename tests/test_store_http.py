"""Vigil's ClickHouse-compatible HTTP endpoint over chDB, spoken to by real clients:
clickhouse-connect (what ServerStore uses) and plain HTTP the way Grafana and curl do."""

from __future__ import annotations

import gzip
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlencode

import clickhouse_connect
import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from monitor.errors import StoreError
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint import EndpointHandle, serve_store
from monitor.store.server import ServerStore
from tests.fixtures import rows as fixture_rows
from tests.test_store_backends import NOW, make_events


def get(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def client(served_store: EndpointHandle) -> Iterator[object]:
    # The writer key: this test creates and fills tables through the endpoint.
    ch = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=served_store.port,
        password=served_store.writer_key,
        autogenerate_session_id=False,
    )
    yield ch
    ch.close()


def test_ping(served_store: EndpointHandle) -> None:
    assert get(served_store.url + "/ping")[:1] == (200,)
    assert get(served_store.url + "/ping")[2] == b"Ok.\n"
    assert get(served_store.url + "/")[2] == b"Ok.\n"
    status, headers, _body = get(served_store.url + "/no/such/handler")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "246"


def test_grafana_style_get_with_default_format_json(
    served_store: EndpointHandle, embedded_store: EmbeddedStore
) -> None:
    events = make_events(12)
    embedded_store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
    query = "SELECT route, count() AS n FROM events GROUP BY route ORDER BY route"
    params = urlencode({"query": query, "default_format": "JSON", "database": "vigil"})
    status, headers, body = get(f"{served_store.url}/?{params}")
    assert status == 200, body
    assert headers["X-ClickHouse-Format"] == "JSON"
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-ClickHouse-Server-Display-Name"]
    assert orjson.loads(headers["X-ClickHouse-Summary"])["read_rows"] != ""
    result = orjson.loads(body)
    assert [col["name"] for col in result["meta"]] == ["route", "n"]
    assert sum(int(row["n"]) for row in result["data"]) == 12


def test_format_clause_wins_and_settings_apply(served_store: EndpointHandle) -> None:
    params = urlencode(
        {
            "query": "SELECT 1 AS a, 'x' AS b FORMAT JSONEachRow",
            "default_format": "CSV",
            "output_format_json_quote_64bit_integers": "1",
            "max_result_rows": "10",
        }
    )
    status, headers, body = get(f"{served_store.url}/?{params}")
    assert status == 200 and headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert orjson.loads(body) == {"a": 1, "b": "x"}


def test_post_query_param_plus_body_inserts_text(
    served_store: EndpointHandle, embedded_store: EmbeddedStore
) -> None:
    embedded_store.command(
        "CREATE TABLE vigil.t_text (a UInt32, b String) ENGINE = MergeTree ORDER BY a"
    )
    params = urlencode({"query": "INSERT INTO vigil.t_text FORMAT TabSeparated"})
    key = {"X-ClickHouse-Key": served_store.writer_key}
    status, headers, body = get(
        f"{served_store.url}/?{params}", data=b"1\tone\n2\ttwo\n", headers=key
    )
    assert status == 200, body
    assert orjson.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    # Compressed and chunked bodies, the statement inside the body this time.
    payload = gzip.compress(b"INSERT INTO vigil.t_text FORMAT TabSeparated\n3\tthree\n")
    conn = http.client.HTTPConnection("127.0.0.1", served_store.port)
    conn.request(
        "POST",
        "/",
        body=iter([payload[:10], payload[10:]]),
        encode_chunked=True,
        headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked", **key},
    )
    response = conn.getresponse()
    assert response.status == 200, response.read()
    response.read()
    conn.close()
    # Settings written in the statement itself (the body then goes inline).
    statement = (
        "INSERT INTO vigil.t_text SETTINGS input_format_skip_unknown_fields = 1 FORMAT JSONEachRow"
    )
    status, _, body = get(
        f"{served_store.url}/?{urlencode({'query': statement})}",
        data=b'{"a": 4, "b": "four", "zzz": 1}\n',
        headers=key,
    )
    assert status == 200, body
    assert embedded_store.raw(
        "SELECT groupArray(b) FROM (SELECT b FROM vigil.t_text ORDER BY a)"
    ) == (b"['one','two','three','four']\n")


def test_errors_carry_clickhouse_code_and_text(served_store: EndpointHandle) -> None:
    status, headers, body = get(f"{served_store.url}/?{urlencode({'query': 'SELEC 1'})}")
    assert status == 500
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error")
    assert b"(SYNTAX_ERROR)" in body
    status, headers, body = get(
        f"{served_store.url}/?{urlencode({'query': 'SELECT * FROM nope.nope'})}"
    )
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "81"


def test_get_is_read_only(served_store: EndpointHandle) -> None:
    params = urlencode({"query": "CREATE TABLE vigil.t_ro (a UInt8) ENGINE = Memory"})
    status, headers, _body = get(f"{served_store.url}/?{params}")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "164"


def test_clickhouse_connect_native_query_insert_and_command(
    client: clickhouse_connect.driver.Client, embedded_store: EmbeddedStore
) -> None:
    events = make_events(15)
    embedded_store.insert("events", [fixture_rows.event_row(e, NOW) for e in events])
    result = client.query(
        "SELECT event_id, ts, route, metadata, latency_ms, feedback_rating FROM vigil.events FINAL "
        "ORDER BY event_id"
    )
    assert [row[0] for row in result.result_rows] == sorted(e.event_id for e in events)
    by_id = {e.event_id: e for e in events}
    for event_id, ts, route, metadata, latency, rating in result.result_rows:
        event = by_id[event_id]
        assert isinstance(ts, datetime)
        assert ts.replace(tzinfo=None) == event.ts.replace(tzinfo=None)
        assert route == event.route and latency == event.response.latency_ms
        assert metadata == {k: str(v) for k, v in event.metadata.items()}
        assert rating == (event.feedback.rating if event.feedback else None)
    # Server-side parameters and commands.
    assert client.query("SELECT {n:UInt32} * 2", parameters={"n": 21}).result_rows == [(42,)]
    assert client.command("SELECT version(), timezone()")[0]  # type: ignore[index]
    client.command(
        "CREATE TABLE IF NOT EXISTS vigil.t_native (a UInt32, b LowCardinality(String), "
        "m Map(String, Float64), x Nullable(Float64)) ENGINE = MergeTree ORDER BY a"
    )
    # insert() sends a compressed Native body; raw_insert a text one.
    summary = client.insert(
        "vigil.t_native",
        [[1, "a", {"k": 0.5}, None], [2, "b", {}, 2.5]],
        column_names=["a", "b", "m", "x"],
    )
    assert summary.written_rows == 2
    client.raw_insert("vigil.t_native", ["a", "b"], insert_block="3\tc\n", fmt="TabSeparated")
    assert client.query("SELECT * FROM vigil.t_native ORDER BY a").result_rows == [
        (1, "a", {"k": 0.5}, None),
        (2, "b", {}, 2.5),
        (3, "c", {}, None),
    ]
    with pytest.raises(DatabaseError, match="62"):
        client.query("SELEC 1")


def test_basic_auth_when_a_password_is_set(embedded_store: EmbeddedStore) -> None:
    endpoint = serve_store(embedded_store, username="grafana", password="pw-123")
    try:
        status, headers, _body = get(endpoint.url + "/?query=SELECT%201")
        assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "516"
        assert get(endpoint.url + "/ping")[0] == 200  # health checks stay open
        good = ServerStore(endpoint.url, "grafana", "pw-123", "vigil", 90)
        assert good.query("SELECT 1 AS one") == [{"one": 1}]
        good.close()
        with pytest.raises(StoreError) as caught:
            ServerStore(endpoint.url, "grafana", "wrong-pw", "vigil", 90)
        assert "516" in str(caught.value) and "wrong-pw" not in str(caught.value)
    finally:
        endpoint.close()


def test_close_stops_keep_alive_connections(embedded_store: EmbeddedStore) -> None:
    endpoint = serve_store(embedded_store)
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port)
    conn.request("GET", "/ping")
    assert conn.getresponse().read() == b"Ok.\n"
    endpoint.close()  # returns although the client keeps its connection open
    endpoint.close()
    conn.close()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", endpoint.port).request("GET", "/ping")
