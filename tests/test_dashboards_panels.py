"""The generated dashboards: committed JSON up to date, and every panel's SQL runs on a
store seeded by a real replay, with the Grafana ClickHouse macros expanded as the
datasource expands them, returning the columns the panel expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dashboards.build import DASHBOARDS, DATASOURCE_TYPE, GENERATED, stale
from dashboards.macros import TimeRange, expand, unexpanded
from dashboards.panels import PanelSpec
from monitor.store.embedded import EmbeddedStore
from tests.fixtures.seeded import Seeded

PANELS = [(board.uid, panel) for board in DASHBOARDS for panel in board.panels]


def test_the_committed_dashboards_are_up_to_date() -> None:
    assert stale() == [], "run `vigil dashboards build` and commit dashboards/generated/"


def test_every_panel_queries_the_clickhouse_datasource() -> None:
    for board in DASHBOARDS:
        data = json.loads((GENERATED / f"{board.uid}.json").read_text())
        assert data["uid"] == board.uid
        assert [p["title"] for p in data["panels"]] == [p.title for p in board.panels]
        for panel in data["panels"]:
            [target] = panel["targets"]
            assert target["datasource"]["type"] == DATASOURCE_TYPE
            assert target["editorType"] == "sql" and "{db}" not in target["rawSql"]
        ids = [p["id"] for p in data["panels"]]
        assert len(set(ids)) == len(ids)


@pytest.fixture(scope="module")
def store(seeded: Seeded) -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(seeded.data_dir)
    yield opened
    opened.close()


@pytest.mark.parametrize(("board", "panel"), PANELS, ids=[f"{b}:{p.key}" for b, p in PANELS])
def test_panel_sql_runs_and_returns_its_columns(
    board: str, panel: PanelSpec, store: EmbeddedStore, seeded: Seeded
) -> None:
    # Up to now: dead letters are dated when received, events by their own time.
    until = datetime.now(UTC) + timedelta(minutes=1)
    sql = expand(panel.render(store.database), TimeRange(seeded.start, until, 300))
    assert unexpanded(sql) == []
    described = store.query(f"DESCRIBE TABLE ({sql})")
    assert tuple(row["name"] for row in described) == panel.columns
    rows = store.query(sql)
    assert rows, f"{panel.key}: no rows on the seeded store"
    assert tuple(rows[0]) == panel.columns
