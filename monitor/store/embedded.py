"""The embedded backend: chDB (the ClickHouse engine in-process) under a data directory.

chDB allows one process per data directory and one query at a time per session, so every
call goes through one lock; callers run it in a worker thread (``asyncio.to_thread``).
Inserts ship rows as inline JSONEachRow, the same bytes the server backend sends.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import StoreError
from monitor.store.base import INSERT_SETTINGS, Row, json_each_row, render
from monitor.store.schema import create_statements

_SETTINGS_CLAUSE = " SETTINGS " + ", ".join(f"{k}='{v}'" for k, v in INSERT_SETTINGS.items())


class EmbeddedStore:
    """ClickHouse SQL over chDB, persisted under ``data_dir``."""

    def __init__(self, data_dir: Path, database: str = "vigil", ttl_days: int = 90) -> None:
        from chdb import session as chdb_session  # heavy import, only when used

        self.data_dir = Path(data_dir)
        self.database = database
        self.ttl_days = ttl_days
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._session = chdb_session.Session(str(self.data_dir))
        except Exception as exc:  # chdb raises plain RuntimeError/ChdbError variants
            raise StoreError(f"cannot open embedded store at {self.data_dir}: {exc}") from exc

    # -- the Store interface -----------------------------------------------------------

    def migrate(self) -> None:
        for statement in create_statements(self.database, self.ttl_days):
            self.raw(statement)

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        body = json_each_row(rows).decode()
        self.raw(f"INSERT INTO {self.database}.{table}{_SETTINGS_CLAUSE} FORMAT JSONEachRow\n{body}")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        data = self.raw(render(sql, params), "JSONEachRow")
        return [orjson.loads(line) for line in data.splitlines() if line]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.raw(render(sql, params))

    def close(self) -> None:
        with self._lock:
            try:
                self._session.close()
            except Exception:  # closing twice or after a failed open is harmless
                pass

    # -- beyond the interface: the HTTP endpoint serves raw formats --------------------

    def raw(self, sql: str, fmt: str = "TabSeparated") -> bytes:
        """Run one statement and return the result bytes in ``fmt``."""
        with self._lock:
            try:
                result = self._session.query(sql, fmt)
            except Exception as exc:
                raise StoreError(_first_line(str(exc))) from exc
        error = getattr(result, "error_message", None)
        if callable(error):
            error = error()
        if error:
            raise StoreError(_first_line(str(error)))
        return bytes(result.bytes()) if result is not None else b""


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0][:500] if message.strip() else "unknown chDB error"
