"""The server backend: a ClickHouse server (or Vigil's own chDB endpoint) over HTTP.

Same SQL text as the embedded backend (`render` substitutes the parameters client-side)
and the same insert bytes (JSONCompactEachRow with `INSERT_SETTINGS`), sent through
clickhouse-connect's raw calls so no type mapping happens in Python. Every
clickhouse-connect or transport error is translated to `StoreError` in `_call`, the one
place that knows the foreign exception types; messages name the URL, never the password.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import orjson

from monitor.errors import StoreError
from monitor.logs import mask_urls
from monitor.store.base import INSERT_SETTINGS, Rows, insert_payload, render, run_migration

log = logging.getLogger("vigil.store.server")

T = TypeVar("T")

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class ServerStore:
    """ClickHouse SQL over clickhouse-connect's HTTP client."""

    def __init__(
        self,
        url: str,
        username: str = "default",
        password: str = "",
        database: str = "vigil",
        ttl_days: int = 90,
        raw_text_days: int | None = None,
        *,
        connect_timeout_s: int = 10,
        timeout_s: int = 300,
    ) -> None:
        self.database = database
        self.ttl_days = ttl_days
        self.raw_text_days = raw_text_days
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"store.url must be http(s)://host[:port], got {_redact_url(url)!r}")
        # Credentials in the URL are accepted but never echoed back (see _redact_url).
        self._password = password or unquote(parts.password or "")
        self.url = _redact_url(url if "://" in url else f"http://{url}")
        host = parts.hostname
        # Loopback has bandwidth to spare: skip the compression CPU; a remote server
        # gets lz4 (its JSON bodies shrink ~5x).
        self._compress = host not in _LOOPBACK and not host.startswith("127.")
        self._client: Any = self._call(
            "connect",
            lambda: _connect(
                host=host,
                port=parts.port,
                interface=parts.scheme,
                username=username or unquote(parts.username or "") or "default",
                password=self._password,
                proxy_path=parts.path.rstrip("/"),
                compress=self._compress,
                connect_timeout_s=connect_timeout_s,
                timeout_s=timeout_s,
            ),
        )
        log.info(
            "store connected",
            extra={
                "url": mask_urls(self.url),
                "server_version": getattr(self._client, "server_version", None),
            },
        )

    # -- the Store interface -----------------------------------------------------------

    def migrate(self) -> None:
        run_migration(self.command, self.database, self.ttl_days, self.raw_text_days)

    def insert(self, table: str, rows: Rows) -> None:
        if not rows:
            return
        columns, body = insert_payload(table, rows)
        compression = None
        if self._compress:
            import lz4.frame  # shipped with clickhouse-connect's lz4 extra

            body, compression = lz4.frame.compress(body), "lz4"
        self._call(
            f"insert into {table}",
            lambda: self._client.raw_insert(
                f"{self.database}.{table}",
                column_names=columns,
                insert_block=body,
                settings=dict(INSERT_SETTINGS),
                fmt="JSONCompactEachRow",
                compression=compression,
            ),
        )

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        text = render(sql, params)
        data: bytes = self._call("query", lambda: self._client.raw_query(text, fmt="JSONEachRow"))
        return [orjson.loads(line) for line in data.splitlines() if line]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        text = render(sql, params)
        self._call("command", lambda: self._client.command(text))

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a pool twice is harmless
                log.debug("store close failed", exc_info=True)

    # -- the one place foreign errors become StoreError ----------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from clickhouse_connect.driver.exceptions import DatabaseError, Error

        try:
            return fn()
        except DatabaseError as exc:
            if _is_unreachable(exc):
                raise StoreError(
                    self._scrub(f"cannot reach ClickHouse at {self.url}: {_root_reason(exc)}")
                ) from exc
            raise StoreError(self._scrub(f"{what} failed: {_server_message(exc)}")) from exc
        except (Error, OSError) as exc:
            if _is_unreachable(exc):
                raise StoreError(
                    self._scrub(f"cannot reach ClickHouse at {self.url}: {_root_reason(exc)}")
                ) from exc
            raise StoreError(
                self._scrub(f"{what} failed at {self.url}: {_root_reason(exc)}")
            ) from exc

    def _scrub(self, message: str) -> str:
        # Belt and braces: server text can echo a URL; a password must never reach a log.
        return message.replace(self._password, "********") if self._password else message


def _connect(
    *,
    host: str,
    port: int | None,
    interface: str,
    username: str,
    password: str,
    proxy_path: str,
    compress: bool,
    connect_timeout_s: int,
    timeout_s: int,
) -> Any:
    import clickhouse_connect

    return clickhouse_connect.get_client(
        host=host,
        port=port or (8443 if interface == "https" else 8123),
        interface=interface,
        username=username,
        password=password,
        # No database: `migrate` creates it, and every statement names it.
        database=None,
        proxy_path=proxy_path,
        compress=compress,
        connect_timeout=connect_timeout_s,
        send_receive_timeout=timeout_s,
        # A session id would serialize the pipeline's concurrent store calls into
        # "concurrent queries within the same session" errors; Vigil needs no session.
        autogenerate_session_id=False,
        # Server error text (code, message), but not the URL, which we add ourselves.
        show_clickhouse_errors="scrub",
    )


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_unreachable(exc: BaseException) -> bool:
    import urllib3.exceptions as u3

    unreachable = (
        ConnectionError,
        TimeoutError,
        u3.NewConnectionError,
        u3.MaxRetryError,
        u3.ConnectTimeoutError,
        u3.ProtocolError,
    )
    return any(isinstance(cause, unreachable) for cause in _causes(exc))


def _root_reason(exc: BaseException) -> str:
    root = _causes(exc)[-1]
    if isinstance(root, ConnectionRefusedError):
        return "connection refused"
    if isinstance(root, TimeoutError):
        return "timed out"
    text = str(root).splitlines()[0] if str(root) else ""
    return f"{type(root).__name__}: {text[:300]}" if text else type(root).__name__


def _server_message(exc: BaseException) -> str:
    # clickhouse-connect wraps the server body: "Received ClickHouse exception, code: 62,
    # server response: Code: 62. DB::Exception: ...". Keep the server's own sentence.
    text = str(exc)
    marker = "server response:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else type(exc).__name__
