"""Panels as data: a title, a visualization, the SQL it runs and the columns it returns.

The SQL is written for Grafana's ClickHouse datasource (`grafana-clickhouse-datasource`)
with its macros (`dashboards.macros`); ``{db}`` stands for Vigil's database and is filled
in when a dashboard is built. The same specs drive the generated dashboards
(`dashboards.build`), the tests that run every panel's SQL on a seeded store, and the
HTML report (`dashboards.report`), so a panel cannot drift from what the report shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["timeseries", "table", "stat", "barchart"]


@dataclass(frozen=True)
class PanelSpec:
    """One panel."""

    key: str
    """Stable id (the panel's refId stem and the report's section anchor)."""
    title: str
    kind: Kind
    sql: str
    """ClickHouse SQL with Grafana ClickHouse macros; ``{db}`` is the database."""
    columns: tuple[str, ...]
    """The columns the SQL returns, in order (a test checks them on a seeded store)."""
    description: str = ""
    unit: str = ""
    """Grafana unit id (``percentunit``, ``ms``, ``short``...)."""
    width: int = 12
    height: int = 8

    def render(self, database: str) -> str:
        """The SQL with the database filled in (macros left for the datasource)."""
        return self.sql.replace("{db}", database)

    @property
    def time_series(self) -> bool:
        return self.kind in ("timeseries", "barchart") and self.columns[0] == "time"


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard: its uid, title and panels, in layout order."""

    uid: str
    title: str
    description: str
    panels: tuple[PanelSpec, ...]
    tags: tuple[str, ...] = ("vigil",)
    links: tuple[tuple[str, str], ...] = ()
    """(title, dashboard uid) links shown at the top."""
