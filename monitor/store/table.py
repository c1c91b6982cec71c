"""One ClickHouse table as Vigil declares it: name, DDL body, retention and tuning."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """One table: its name and its CREATE statement body (columns and engine)."""

    name: str
    ddl: str
    ttl_column: str | None = "ts"
    tuning: tuple[tuple[str, str], ...] = ()
    """MergeTree settings that only change speed, applied after creation (see
    `tuning_statements`): a server too old to know one still gets the table."""

    def create_sql(self, database: str, ttl_days: int) -> str:
        ttl = (
            f"\nTTL toDateTime({self.ttl_column}) + INTERVAL {ttl_days} DAY"
            if self.ttl_column
            else ""
        )
        return f"CREATE TABLE IF NOT EXISTS {database}.{self.name} {self.ddl}{ttl}"
