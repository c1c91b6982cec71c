"""One ClickHouse table as Vigil declares it: name, DDL body, retention and tuning."""

from __future__ import annotations

import re
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
    raw_text: tuple[str, ...] = ()
    """Columns of monitored free text, which ``privacy.raw_text_days`` empties before the
    row expires (a column TTL on ``ttl_column``)."""

    def text_ttl(self, raw_text_days: int) -> str:
        """The column TTL expression of `raw_text` for that many days."""
        return f"toDateTime({self.ttl_column}) + INTERVAL {raw_text_days} DAY"

    def create_sql(self, database: str, ttl_days: int, raw_text_days: int | None = None) -> str:
        ddl = self.ddl
        if raw_text_days is not None and self.raw_text and self.ttl_column:
            # Put on the DDL text here, not in `ddl`: `schema.columns` reads the plain
            # column types off it (the Null ``ingest`` table takes no TTL).
            names = "|".join(self.raw_text)
            ddl = re.sub(
                rf"^(    (?:{names}) .+?)(,?)$",
                rf"\1 TTL {self.text_ttl(raw_text_days)}\2",
                ddl,
                flags=re.MULTILINE,
            )
        ttl = (
            f"\nTTL toDateTime({self.ttl_column}) + INTERVAL {ttl_days} DAY"
            if self.ttl_column
            else ""
        )
        return f"CREATE TABLE IF NOT EXISTS {database}.{self.name} {ddl}{ttl}"
