"""The ClickHouse schema as statements: creating every table, the every-event ``ingest``
path and its views, and the best-effort tuning; the tables themselves are in
`monitor.store.tables`.
"""

from __future__ import annotations

import re

from monitor.store.table import Table
from monitor.store.tables import TABLES

__all__ = [
    "INGEST_TABLE",
    "INGEST_TARGETS",
    "TABLES",
    "Table",
    "columns",
    "create_statements",
    "ingest_columns",
    "tuning_statements",
]


#: The every-event write path. The pipeline inserts each batch once, into ``ingest``
#: (engine Null: it keeps nothing), and two materialized views copy every inserted block
#: into ``events`` and ``checks``. The columns the two share (key, segment, latency,
#: tokens) are parsed once and the batch is one statement: measured, 11.4 -> 9.2 us of
#: store CPU per event. Nothing reads ``ingest``; it is not in `TABLES`. Both rows of an
#: event land in one INSERT, and a batch that fails part-way is retried whole (its Kafka
#: offsets are committed only after it is stored), so the pair stays complete.
INGEST_TABLE = "ingest"
INGEST_TARGETS = ("events", "checks")


def columns(table: str) -> dict[str, str]:
    """A table's columns and their types, read off its DDL in `TABLES`."""
    ddl = next(t.ddl for t in TABLES if t.name == table)
    body = ddl.split(") ENGINE", 1)[0]
    return dict(_COLUMN.findall(body))


_COLUMN = re.compile(r"^    (\w+) (.+?),?$", re.MULTILINE)


def ingest_columns() -> dict[str, str]:
    """Columns of ``ingest``: every column of its targets, each once."""
    merged: dict[str, str] = {}
    for table in INGEST_TARGETS:
        for name, kind in columns(table).items():
            merged.setdefault(name, kind)
    return merged


def _ingest_statements(database: str) -> list[str]:
    body = ",\n".join(f"    {name} {kind}" for name, kind in ingest_columns().items())
    statements = [
        f"CREATE TABLE IF NOT EXISTS {database}.{INGEST_TABLE} (\n{body}\n) ENGINE = Null"
    ]
    for target in INGEST_TARGETS:
        names = ", ".join(columns(target))
        statements.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{INGEST_TABLE}_to_{target} "
            f"TO {database}.{target} AS SELECT {names} FROM {database}.{INGEST_TABLE}"
        )
    return statements


def create_statements(database: str, ttl_days: int, raw_text_days: int | None = None) -> list[str]:
    """Every statement `migrate` runs, in order (``raw_text_days``: `Table.raw_text`)."""
    return (
        [f"CREATE DATABASE IF NOT EXISTS {database}"]
        + [table.create_sql(database, ttl_days, raw_text_days) for table in TABLES]
        + _ingest_statements(database)
    )


def tuning_statements(database: str) -> list[str]:
    """Statements that apply each table's `Table.tuning` (idempotent, also to tables an
    older version created). Best effort: `migrate` logs one it cannot run and goes on."""
    return [
        f"ALTER TABLE {database}.{table.name} MODIFY SETTING "
        + ", ".join(f"{name} = {value}" for name, value in table.tuning)
        for table in TABLES
        if table.tuning
    ]
