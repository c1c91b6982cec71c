"""The gate's response cache: one SQLite file under ``evalset.gate.cache_dir``.

Keyed by what decides an answer: the endpoint's base URL, the model, the exact prompt
messages and every request parameter (temperature, max_tokens, seed, response format).
Each answer is committed the moment it arrives, so a run that is interrupted (Ctrl-C, a
dead endpoint, a killed process) loses nothing it already paid for, and a rerun of the
same configuration makes no calls at all. Judge verdict calls are cached the same way.

SQLite (not a JSONL log) because several gate runs may share the cache at once; its
locking keeps concurrent writers safe.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import EvalsetError

#: Part of every key: bump when what is stored per answer changes meaning.
CACHE_LAYOUT = "gate-cache-1"
FILE_NAME = "responses.sqlite"


def cache_key(base_url: str, model: str, messages: list[dict[str, Any]],
              params: dict[str, Any]) -> str:
    """SHA-256 over endpoint, model, messages and parameters (keys sorted, so the order
    a dict was built in never matters; the URL without a trailing slash)."""
    document = {
        "layout": CACHE_LAYOUT,
        "endpoint": base_url.rstrip("/"),
        "model": model,
        "messages": messages,
        "params": params,
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ResponseCache:
    """Cached answers by `cache_key`; every `put` is committed at once."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, endpoint TEXT, "
                "model TEXT, value BLOB, created REAL)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise EvalsetError(f"response cache {self.path}: {exc}") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = orjson.loads(row[0])
        return value

    def put(self, key: str, endpoint: str, model: str, value: dict[str, Any]) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                (key, endpoint, model, orjson.dumps(value), time.time()),
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise EvalsetError(f"response cache {self.path}: {exc}") from exc

    def __len__(self) -> int:
        row = self._db.execute("SELECT count(*) FROM answers").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
