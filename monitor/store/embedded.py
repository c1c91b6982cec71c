"""The embedded backend: chDB (the ClickHouse engine in-process) under a data directory.

chDB allows one process per data directory and one query at a time per session, so every
call goes through one lock; callers run it in a worker thread (``asyncio.to_thread``).
Inserts ship rows as inline JSONCompactEachRow (the fastest text format chDB parses here).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import StoreError
from monitor.store.base import INSERT_SETTINGS, Rows, insert_payload, render, run_migration

_SETTINGS_CLAUSE = " SETTINGS " + ", ".join(f"{k}='{v}'" for k, v in INSERT_SETTINGS.items())


class EmbeddedStore:
    """ClickHouse SQL over chDB, persisted under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        database: str = "vigil",
        ttl_days: int = 90,
        raw_text_days: int | None = None,
    ) -> None:
        from chdb import session as chdb_session  # heavy import, only when used

        self.data_dir = Path(data_dir)
        self.database = database
        self.ttl_days = ttl_days
        self.raw_text_days = raw_text_days
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._current_database = "default"
        try:
            self._session: Any = chdb_session.Session(str(self.data_dir))  # type: ignore[no-untyped-call]
        except Exception as exc:  # chdb raises plain RuntimeError/ChdbError variants
            raise StoreError(f"cannot open embedded store at {self.data_dir}: {exc}") from exc

    # -- the Store interface -----------------------------------------------------------

    def migrate(self) -> None:
        run_migration(self.raw, self.database, self.ttl_days, self.raw_text_days)

    def insert(self, table: str, rows: Rows) -> None:
        if not rows:
            return
        columns, body = insert_payload(table, rows)
        head = (
            f"INSERT INTO {self.database}.{table} ({', '.join(columns)}){_SETTINGS_CLAUSE}"
            " FORMAT JSONCompactEachRow\n"
        )
        # chDB takes the statement as bytes too: the multi-MB body is not decoded and
        # re-encoded on the way in.
        self.raw(head.encode() + body)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        data = self.raw(render(sql, params), "JSONEachRow")
        return [orjson.loads(line) for line in data.splitlines() if line]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.raw(render(sql, params))

    def close(self) -> None:
        # Closing twice or after a failed open is harmless.
        with self._lock, contextlib.suppress(Exception):
            self._session.close()

    # -- beyond the interface: the HTTP endpoint serves raw formats --------------------

    def open_reader(self, settings: Mapping[str, str]) -> EmbeddedStore:
        """A second chDB session on the same data, for the HTTP endpoint's readers.

        It has its own lock (a slow read never holds this store's, so ingest does not
        wait on it) and is pinned with ``SET``: ``settings`` first, then ``readonly=2``,
        which ClickHouse refuses to lift within the session (writes, DDL and SYSTEM fail
        in the engine; query-level settings stay settable for clients).
        """
        reader = EmbeddedStore(self.data_dir, self.database, self.ttl_days, self.raw_text_days)
        try:
            for name, value in settings.items():
                reader.raw(f"SET {name} = {value}")
            reader.raw("SET readonly = 2")
        except BaseException:
            reader.close()
            raise
        return reader

    def raw(self, sql: str | bytes, fmt: str = "TabSeparated") -> bytes:
        """Run one statement and return the result bytes in ``fmt``."""
        return self.execute(sql, fmt).data

    def execute(
        self,
        sql: str | bytes,
        fmt: str = "TabSeparated",
        *,
        params: Mapping[str, str] | None = None,
        database: str | None = None,
    ) -> RawResult:
        """`raw` with server-side ``{name:Type}`` parameters, a current database and stats.

        The session's current database is switched under the lock when ``database``
        differs (Vigil's own SQL is always qualified, so the switch only serves HTTP
        clients that name a database); ``None`` means ``default``.
        """
        target = database or "default"
        with self._lock:
            try:
                if target != self._current_database:
                    self._check(self._session.query(f"USE `{target.replace('`', '')}`", fmt))
                    self._current_database = target
                result = self._session.query(sql, fmt, params=dict(params) if params else None)
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(_first_line(str(exc))) from exc
        self._check(result)
        if result is None:
            return RawResult(b"")
        return RawResult(
            bytes(result.bytes()),
            rows_read=int(result.rows_read()),
            bytes_read=int(result.bytes_read()),
            rows_written=int(getattr(result, "rows_written", lambda: 0)()),
            bytes_written=int(getattr(result, "bytes_written", lambda: 0)()),
            elapsed_s=float(result.elapsed()),
        )

    @staticmethod
    def _check(result: Any) -> None:
        error = getattr(result, "error_message", None)
        if callable(error):
            error = error()
        if error:
            raise StoreError(_first_line(str(error)))


@dataclass(frozen=True, slots=True)
class RawResult:
    """Result bytes of one statement and what chDB reports about it."""

    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    elapsed_s: float = 0.0


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0][:500] if message.strip() else "unknown chDB error"
