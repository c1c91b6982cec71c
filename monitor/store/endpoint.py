"""A ClickHouse-compatible HTTP endpoint over the embedded (chDB) store, on loopback.

chDB lets one process open a data directory, so the daemon that owns it (`vigil up`,
`vigil worker`) serves it here for everyone else: `vigil alerts`/`vigil report` (through
`ServerStore`, i.e. clickhouse-connect), Grafana's ClickHouse datasource, curl.

What a ClickHouse HTTP client can rely on:

- ``GET /ping`` (and ``GET /`` without a query, ``/replicas_status``) answer ``Ok.``;
- the statement is the ``query`` parameter followed by the body (a newline between);
  only reads are served (see `monitor.store.endpoint_guard`: readers run on a second
  chDB session pinned to ``readonly=2`` and ``max_execution_time``, after a check of the
  tokenized statement and its table functions); the writer key the daemon publishes in
  its lock file also allows Vigil's own INSERTs and idempotent schema statements;
- ``database``, ``default_format``, ``query_id``, ``param_<name>`` (server-side
  ``{name:Type}`` parameters) and ClickHouse settings as URL parameters (applied to
  SELECT and INSERT statements; HTTP transport settings are accepted and ignored);
- a trailing ``FORMAT x`` clause picks the output format, then ``default_format``,
  then TabSeparated; Native works both ways, which is what clickhouse-connect uses;
- insert bodies in any format, optionally compressed (Content-Encoding gzip, deflate,
  lz4, zstd, br) and/or chunked: text bodies go inline into the INSERT, binary bodies
  through a temporary file read with ``FROM INFILE``;
- errors: HTTP 500 (403 for authentication) with ClickHouse's ``Code: N. DB::Exception:``
  text and the ``X-ClickHouse-Exception-Code`` header;
- headers X-ClickHouse-Format, -Summary, -Query-Id, -Timezone, -Server-Display-Name;
- a token (HTTP basic password, X-ClickHouse-Key, ``Authorization: Bearer``, or the
  password parameter), required beyond loopback; bodies, decompressed bodies and
  statements are size-limited (413); requests with an ``Origin`` header are refused (403)
  unless that origin is allowed.

Not served: multipart form bodies (external tables), ``compress=1``/``decompress=1``
(ClickHouse's internal block compression), sessions, and ``client_protocol_version``
(answered as protocol 0, which clients such as clickhouse-connect detect and accept).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from monitor.errors import StoreError
from monitor.store.embedded import EmbeddedStore
from monitor.store.endpoint_guard import (
    DEFAULT_TABLE_FUNCTIONS,
    PINNED_SETTINGS,
    Guard,
    authorize,
    check_origin,
    credential,
    is_loopback,
    pinned,
)
from monitor.store.http_protocol import (
    FORMAT_TAIL,
    RESULT_KEYWORDS,
    SETTING_NAME,
    SETTINGS_WORD,
    TEXT_FORMAT_PREFIXES,
    TRAILING_FORMAT,
    TRANSPORT_PARAMS,
    ClickHouseError,
    as_text,
    content_type,
    from_store_error,
    read_body,
    settings_clause,
    split_statement,
    summary,
    too_large,
)

log = logging.getLogger("vigil.store.http")


@dataclass
class EndpointHandle:
    """A running endpoint; `close` stops it and every connection thread."""

    host: str
    port: int
    writer_key: str = field(repr=False)
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def writer_url(self) -> str:
        """`url` with the writer key as its password (for Vigil's own `ServerStore`)."""
        return self.url.replace("://", f"://vigil:{self.writer_key}@", 1)

    def close(self) -> None:
        server = self._server
        if server.closed:
            return
        server.closed = True
        server.shutdown()
        with server.conns_lock:
            conns = list(server.conns)
        for conn in conns:  # unblock keep-alive threads waiting for the next request
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()  # joins the request threads (block_on_close)
        self._thread.join()
        server.reader.close()
        shutil.rmtree(server.spool, ignore_errors=True)
        log.info("http endpoint stopped", extra={"port": self.port})


def serve_store(
    store: EmbeddedStore,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    username: str = "default",
    password: str = "",
    display_name: str = "vigil-chdb",
    max_body_bytes: int = 64 * 1024 * 1024,
    max_query_bytes: int = 256 * 1024,
    max_execution_s: int = 30,
    allowed_table_functions: Iterable[str] = DEFAULT_TABLE_FUNCTIONS,
    allowed_origins: Iterable[str] = (),
    writer_key: str = "",
) -> EndpointHandle:
    """Serve ``store`` over ClickHouse's HTTP protocol in a background thread, read-only.

    ``port`` 0 picks a free port (see ``handle.port``). With a ``password`` (the token),
    every request must carry it (as ``username`` when a user is named); without one, only
    a loopback ``host`` is served. ``writer_key`` (random when empty, see
    ``handle.writer_url``) is the credential that may also write Vigil's own rows.
    """
    if not password and not is_loopback(host):
        raise StoreError(
            f"refusing to serve the store on {host or '0.0.0.0'} without a token: set "
            "store.http_token (VIGIL_STORE__HTTP_TOKEN) or bind store.http_host to 127.0.0.1"
        )
    reader = store.open_reader({"max_execution_time": str(int(max_execution_s))})
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        reader.close()
        raise StoreError(f"cannot serve the store on {host}:{port}: {exc.strerror}") from exc
    server.store, server.reader = store, reader
    server.username, server.password = username, password
    server.writer_key = writer_key or secrets.token_urlsafe(24)
    server.max_body, server.max_query = max_body_bytes, max_query_bytes
    server.origins = frozenset(allowed_origins)
    names = store.raw("SELECT name FROM system.table_functions").decode().split()
    server.guard = Guard(names, allowed_table_functions)
    server.display_name = display_name
    server.spool = Path(tempfile.mkdtemp(prefix="vigil-http-"))
    server.timezone = store.raw("SELECT timezone()").decode().strip() or "UTC"
    server.version = store.raw("SELECT version()").decode().strip()
    server.settings = _current_settings(store)
    # A short poll interval makes `close` quick; an idle poll costs next to nothing.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="vigil-http", daemon=True
    )
    thread.start()
    bound_port = server.server_address[1]
    log.info("http endpoint serving", extra={"host": host, "port": bound_port})
    return EndpointHandle(host, int(bound_port), server.writer_key, server, thread)


def _current_settings(store: EmbeddedStore) -> dict[str, str]:
    data = store.raw("SELECT name, value FROM system.settings", "JSONCompactEachRow")
    return {row[0]: row[1] for row in map(orjson.loads, data.splitlines()) if row}


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    store: EmbeddedStore
    reader: EmbeddedStore
    username: str
    password: str
    writer_key: str
    max_body: int
    max_query: int
    origins: frozenset[str]
    guard: Guard
    display_name: str
    spool: Path
    timezone: str
    version: str
    settings: dict[str, str]

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        self.closed = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients pool connections
    timeout = 60  # idle keep-alive connections close after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines carry the URL, which holds the query text: keep them out of logs.
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    # -- one request -------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            check_origin(self.headers.get("Origin"), self.server.origins)
            body = self._read_body()
            if parts.path in ("/ping", "/replicas_status") or (
                parts.path == "/"
                and method in ("GET", "HEAD")
                and "query" not in params
                and not body
            ):
                self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, method)
                return
            if parts.path != "/":
                raise ClickHouseError(
                    246, "UNKNOWN_HANDLER", f"There is no handle {parts.path}", status=404
                )
            user, secret = credential(self.headers, params)
            writer = authorize(
                user, secret, username=self.server.username, token=self.server.password,
                writer_key=self.server.writer_key, client=self.client_address[0],
            )  # fmt: skip
            writer = writer and method != "GET" and params.get("readonly", "0") in ("", "0")
            result, headers = self._run(params, body, query_id, writer)
        except ClickHouseError as exc:
            self._fail(exc, query_id, method)
            return
        except StoreError as exc:
            self._fail(from_store_error(exc), query_id, method)
            return
        headers["X-ClickHouse-Query-Id"] = query_id
        headers["X-ClickHouse-Timezone"] = self.server.timezone
        self._reply(200, result, headers, method)
        log.debug(
            "http query",
            extra={
                "query_id": query_id,
                "bytes": len(result),
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    def _run(
        self, params: dict[str, str], body: bytes, query_id: str, writer: bool
    ) -> tuple[bytes, dict[str, str]]:
        query = params.get("query", "")
        if len(query) > self.server.max_query:
            raise too_large("the query", self.server.max_query)
        head, data = split_statement(query, body)
        if len(head) > self.server.max_query and not data:
            raise too_large("the query", self.server.max_query)
        keyword = self.server.guard.check(head, writer=writer)
        writes = keyword not in RESULT_KEYWORDS
        settings = self._settings(params)
        if not writer and (bad := PINNED_SETTINGS.intersection(settings)):
            raise pinned(sorted(bad)[0])
        bind = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        database = params.get("database") or None
        store = self.server.store if writer else self.server.reader
        headers: dict[str, str] = {}
        if keyword == "INSERT":
            result = self._insert(head, data, settings, bind, database)
        else:
            sql = head
            if keyword in ("SELECT", "WITH") and settings:
                sql = f"{sql.rstrip().rstrip(';')}\nSETTINGS {settings_clause(settings)}"
            match = TRAILING_FORMAT.search(head)
            fmt = match.group(1) if match else params.get("default_format") or "TabSeparated"
            result = store.execute(sql, fmt, params=bind, database=database)
            if not writes:
                headers["X-ClickHouse-Format"] = fmt
                headers["Content-Type"] = content_type(fmt)
        headers["X-ClickHouse-Summary"] = summary(result)
        return result.data, headers

    def _insert(
        self,
        head: str,
        data: bytes,
        settings: dict[str, str],
        bind: dict[str, str],
        database: str | None,
    ) -> Any:
        store = self.server.store
        tail = FORMAT_TAIL.match(head)
        if tail is None or not data:
            # INSERT ... VALUES (...) or INSERT ... SELECT: plain SQL.
            text = head + ("\n" + data.decode("utf-8", "replace") if data else "")
            return store.execute(text, params=bind, database=database)
        pre, fmt = tail.group("pre"), tail.group("fmt")
        clause = f" SETTINGS {settings_clause(settings)}" if settings else ""
        if SETTINGS_WORD.search(pre):
            # FROM INFILE must precede a SETTINGS clause the client wrote itself: send a
            # text body inline instead (its own settings win over the URL's).
            text_body = as_text(data) if fmt.lower().startswith(TEXT_FORMAT_PREFIXES) else None
            if text_body is None:
                raise ClickHouseError(
                    48, "NOT_IMPLEMENTED", "binary insert bodies need settings as URL parameters"
                )
            return store.execute(f"{pre} FORMAT {fmt}\n{text_body}", params=bind, database=database)
        # Through a file: binary bodies (Native, RowBinary...) cannot travel inside a SQL
        # string, and chDB parses a large text body from a file ~30% faster than inline.
        path = self.server.spool / f"{uuid.uuid4().hex}.bin"
        path.write_bytes(data)
        try:
            quoted = str(path).replace("\\", "\\\\").replace("'", "\\'")
            return store.execute(
                f"{pre} FROM INFILE '{quoted}'{clause} FORMAT {fmt}", params=bind, database=database
            )
        finally:
            path.unlink(missing_ok=True)

    def _settings(self, params: dict[str, str]) -> dict[str, str]:
        known = self.server.settings
        chosen: dict[str, str] = {}
        for name, value in params.items():
            if name in TRANSPORT_PARAMS or name.startswith(("param_", "http_")):
                continue
            # Unknown names are transport parameters of some client; equal values are no-ops.
            if name in known and known[name] != value and SETTING_NAME.match(name):
                chosen[name] = value
        return chosen

    # -- transport ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        try:
            return read_body(self.rfile, self.headers, self.server.max_body)
        except ClickHouseError as exc:
            if exc.status == 413:
                self.close_connection = True  # the rest of the body is never read
            raise

    def _reply(self, status: int, body: bytes, headers: dict[str, str], method: str) -> None:
        self.send_response(status)
        self.send_header("X-ClickHouse-Server-Display-Name", self.server.display_name)
        self.send_header("Content-Type", headers.pop("Content-Type", "text/plain; charset=UTF-8"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", f"timeout={self.timeout}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _fail(self, exc: ClickHouseError, query_id: str, method: str) -> None:
        log.info("http query failed", extra={"query_id": query_id, "code": exc.code})
        self._reply(
            exc.status,
            exc.body(self.server.version).encode(),
            {"X-ClickHouse-Exception-Code": str(exc.code), "X-ClickHouse-Query-Id": query_id},
            method,
        )
