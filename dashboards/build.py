"""Dashboard JSON from the panel specs, with Grafana's own `grafana-foundation-sdk` builders.

The SDK has builders for every panel type but no query type for the ClickHouse
datasource plugin, so `ClickHouseQuery` is that target: the plugin's SQL-editor query
(``editorType: sql``, ``rawSql``, ``format`` 0 for time series and 1 for a table).
The generated files are committed under ``dashboards/generated/``; `stale` tells which of
them no longer match the specs (a test fails on it; `vigil dashboards build` rewrites them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, DashboardLink
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from dashboards.failures import FAILURES
from dashboards.overview import OVERVIEW
from dashboards.panels import DashboardSpec, PanelSpec

#: The plugin id of Grafana's ClickHouse datasource.
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
#: The datasource uid the dashboards point at (`vigil dashboards push` creates it so).
DATASOURCE_UID = "vigil-clickhouse"
DASHBOARDS: tuple[DashboardSpec, ...] = (OVERVIEW, FAILURES)
GENERATED = Path(__file__).resolve().parent / "generated"

_FORMAT_TIME_SERIES, _FORMAT_TABLE = 0, 1
_PANELS: dict[str, Callable[[], Any]] = {
    "timeseries": timeseries.Panel,
    "table": table.Panel,
    "stat": stat.Panel,
    "barchart": barchart.Panel,
}


class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL target of the ClickHouse datasource plugin."""

    def __init__(self, ref_id: str, sql: str, time_series: bool, datasource_uid: str) -> None:
        self.ref_id = ref_id
        self.sql = sql
        self.time_series = time_series
        self.datasource_uid = datasource_uid

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": self.datasource_uid},
            "editorType": "sql",
            "queryType": "timeseries" if self.time_series else "table",
            "format": _FORMAT_TIME_SERIES if self.time_series else _FORMAT_TABLE,
            "rawSql": self.sql,
        }


class _Target(cogbuilder.Builder[cogvariants.Dataquery]):
    """The SDK takes targets as builders."""

    def __init__(self, query: ClickHouseQuery) -> None:
        self.query = query

    def build(self) -> ClickHouseQuery:
        return self.query


def _panel(spec: PanelSpec, database: str, datasource_uid: str) -> Any:
    query = ClickHouseQuery("A", spec.render(database), spec.time_series, datasource_uid)
    panel = (
        _PANELS[spec.kind]()
        .title(spec.title)
        .description(spec.description)
        .datasource(model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=datasource_uid))
        .with_target(_Target(query))
        .span(spec.width)
        .height(spec.height)
    )
    return panel.unit(spec.unit) if spec.unit else panel


def build_dashboard(
    spec: DashboardSpec, database: str = "vigil", datasource_uid: str = DATASOURCE_UID
) -> dict[str, Any]:
    """The dashboard's JSON model, as Grafana's HTTP API and provisioning take it."""
    board = (
        Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("utc")
    )
    for title, uid in spec.links:
        board = board.link(
            DashboardLink(title)
            .type(model.DashboardLinkType.LINK)
            .url(f"/d/{uid}")
            .keep_time(True)  # the drill-down opens on the same time range
        )
    for panel in spec.panels:
        board = board.with_panel(_panel(panel, database, datasource_uid))
    built = board.build()
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    # The SDK numbers nothing; Grafana wants a stable id per panel. Unset options are
    # left out rather than sent as null.
    for i, panel_json in enumerate(data.get("panels", []), start=1):
        panel_json["id"] = i
        for key in [k for k, v in panel_json.items() if v is None]:
            del panel_json[key]
    return data


def render_all(
    database: str = "vigil", datasource_uid: str = DATASOURCE_UID
) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{spec.uid}.json": json.dumps(
            build_dashboard(spec, database, datasource_uid), indent=2, sort_keys=True
        )
        + "\n"
        for spec in DASHBOARDS
    }


def write_all(out: Path = GENERATED, database: str = "vigil") -> list[Path]:
    """Write every dashboard's JSON under ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(database).items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def stale(out: Path = GENERATED) -> list[str]:
    """The generated files missing under ``out`` or different from what the specs give."""
    return [
        name
        for name, text in render_all().items()
        if not (out / name).exists() or (out / name).read_text() != text
    ]
