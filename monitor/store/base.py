"""The one small interface every store backend implements, and the shared SQL helpers.

ClickHouse SQL is the only dialect. Backends differ in transport only:
``embedded`` runs chDB in-process, ``server`` talks to a ClickHouse server over HTTP with
clickhouse-connect. Both take rows as plain dicts (or, on the hot path, `Encoded` lines)
and ship them as JSONCompactEachRow, so the same rows and the same SQL give the same
tables.

Queries use ClickHouse-style placeholders, ``{name:Type}``; `render` substitutes safely
quoted literals so both backends see identical text.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec
import orjson

from monitor.errors import StoreError
from monitor.store.schema import create_statements, tuning_statements

log = logging.getLogger("vigil.store")

Row = Mapping[str, Any]

#: Insert settings both backends use:
#: - accept RFC 3339 timestamps with offsets, and Unix times as numbers (hot-path rows);
#: - read a JSON object given for a String column as its text: encoded ``ingest`` rows
#:   embed the request JSON that way, unescaped (ClickHouse's default, spelled out because
#:   the rows rely on it);
#: - parse each insert on one thread: our inserts are a few MB, where parallel parsing
#:   costs more CPU than it saves (~1.5x slower on 2 cores, competing with the pipeline);
#: - run the whole insert on one thread (max_threads=1): the materialized views that copy
#:   ``ingest`` into ``events`` and ``checks`` otherwise get a pipeline per core, which on
#:   a few-MB insert costs more in hand-offs than it gains (measured on 100k events into
#:   chDB: 9.4-10.2 -> 7.7 us of CPU per event, and less wall time too);
#: - skip collapsing duplicate keys inside each inserted block (optimize_on_insert=0):
#:   ~15% of an insert's cost, and pointless here, since duplicates across batches are
#:   left to merges and `FINAL` anyway, and those handle the rare in-batch one the same way.
INSERT_SETTINGS = {
    "date_time_input_format": "best_effort",
    "input_format_json_read_objects_as_strings": "1",
    "input_format_parallel_parsing": "0",
    "max_threads": "1",
    "max_insert_threads": "1",
    "optimize_on_insert": "0",
}


@runtime_checkable
class Store(Protocol):
    """What the pipeline, timers and CLI need from ClickHouse."""

    database: str

    def migrate(self) -> None:
        """Create the database and every table if missing (idempotent)."""

    def insert(self, table: str, rows: Rows) -> None:
        """Insert rows (dicts keyed by column, or `Encoded` lines) in one batch; raise
        `StoreError` on failure."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT and return rows as dicts; raise `StoreError` on failure."""

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, OPTIMIZE...)."""

    def close(self) -> None:
        """Release the connection or the embedded session."""


def run_migration(
    run: Callable[[str], object], database: str, ttl_days: int, raw_text_days: int | None = None
) -> None:
    """`Store.migrate` for any backend: ``run`` executes one statement.

    Creation must succeed; tuning (`tuning_statements`) may fail on a server that does
    not know a setting, which costs speed only, so it is logged and skipped.
    """
    for statement in create_statements(database, ttl_days, raw_text_days):
        run(statement)
    for statement in tuning_statements(database):
        try:
            run(statement)
        except StoreError as exc:
            log.warning(
                "table tuning not applied", extra={"statement": statement, "error": str(exc)[:300]}
            )


_PLACEHOLDER = re.compile(r"\{(\w+):([^}]+)\}")


def quote(value: Any) -> str:
    """A ClickHouse SQL literal for a Python value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, datetime):
        return f"parseDateTime64BestEffort('{value.isoformat()}', 3, 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def render(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """Substitute ``{name:Type}`` placeholders with quoted literals."""
    if not params:
        return sql

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"query parameter {name!r} not given")
        return quote(params[name])

    return _PLACEHOLDER.sub(sub, sql)


def _default(value: Any) -> Any:
    # numpy arrays and scalars are serialized natively by orjson's OPT_SERIALIZE_NUMPY;
    # anything else unusual (sets, Paths) becomes a list or a string.
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def json_compact_each_row(rows: Sequence[Row]) -> tuple[list[str], bytes]:
    """Rows as JSONCompactEachRow bytes (one JSON array a line) and the column names.

    ClickHouse parses this about 1.5x faster than JSONEachRow (no keys to match). Every
    row must have the first row's keys in the same order; the row builders in
    ``monitor.pipeline.rows`` guarantee it, and a row that differs raises ValueError.
    """
    columns = list(rows[0])
    width = len(columns)
    dumps = orjson.dumps
    # Each line is appended and dropped at once: a kept orjson result holds ~3 KB of
    # slack (see `encode_into` below), which a list of them multiplies by the batch.
    body = bytearray()
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row has {len(row)} columns, expected {width}: {sorted(row)}")
        body += dumps(list(row.values()), default=_default, option=_OPTS)
    if list(rows[-1]) != columns:
        raise ValueError("rows do not share one column order")
    return columns, bytes(body)


# msgspec, not orjson, for the hot path: orjson sizes each result for the worst case and
# a kept result holds ~3 KB more than its bytes (measured: 2.6 us and 170 MB for 50,000
# kept 600-byte rows, against 1.0 us and exact size with msgspec). `encode_into` appends
# to one buffer, so no per-row object is made at all.
encode_into = msgspec.json.Encoder().encode_into
"""``encode_into(value, buffer, -1)`` appends ``value``'s JSON to ``buffer`` (a bytearray)."""


@dataclass(slots=True)
class Encoded:
    """Rows already serialized as JSONCompactEachRow, values in ``columns`` order.

    The every-event rows are built this way in the hot path: each row is a tuple encoded
    straight onto the end of one buffer, instead of a dict per row that the insert then
    turns into a list and dumps (~4 us per event less, most of it under the GIL the
    pipeline needs).
    """

    columns: tuple[str, ...]
    body: bytearray = field(default_factory=bytearray)
    count: int = 0

    def add(self, values: tuple[Any, ...]) -> None:
        """Append one row; ``values`` in ``columns`` order. (The pipeline's loop does the
        same inline for its every-event ``ingest`` rows, and sets ``count`` once.)"""
        encode_into(values, self.body, -1)
        self.body.append(10)  # b"\n"
        self.count += 1

    def __len__(self) -> int:
        return self.count


Rows = Sequence[Row] | Encoded


def insert_payload(table: str, rows: Rows) -> tuple[list[str], bytes]:
    """What both backends send for an insert: column names and JSONCompactEachRow bytes.

    Raises `StoreError` when the rows do not share one column order.
    """
    if isinstance(rows, Encoded):
        return list(rows.columns), bytes(rows.body)
    try:
        return json_compact_each_row(rows)
    except ValueError as exc:
        raise StoreError(f"insert into {table}: {exc}") from exc
