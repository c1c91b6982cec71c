"""Settings and rule values never become SQL text: values travel as quoted parameters,
identifiers (split dimensions, check columns, the database) are allow-listed at load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.rules import parse_rules
from monitor.checks import Heuristics
from monitor.config import HeuristicsSettings, load_settings
from monitor.errors import ConfigError, StoreError
from monitor.store.embedded import EmbeddedStore
from monitor.store.queries import alert_examples as q
from tests.fixtures import rows as fixture_rows
from tests.test_store_backends import make_events

EVIL = "x' OR 1=1 --"


def test_quoted_split_values_select_nothing_extra(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data", "vigil", 30)
    try:
        store.migrate()
        events = make_events(20)
        heuristics = Heuristics(HeuristicsSettings())
        store.insert("checks", [fixture_rows.check_row(e, heuristics.check(e)) for e in events])
        lo = min(e.ts for e in events) - timedelta(minutes=1)
        hi = max(e.ts for e in events) + timedelta(minutes=1)

        def run(segment: dict[str, str], **kw: Any) -> list[dict[str, Any]]:
            sql = q.examples_query("vigil", "latency_p95", segment, lo, hi, latency_over=-1.0,
                                   **kw)
            return store.query(sql)

        route = events[0].route
        good = run({"route": route})
        assert 0 < len(good) <= sum(1 for e in events if e.route == route)
        assert run({"route": EVIL}) == []
        assert run({"route": "it's"}) == []
        judged = q.examples_query("vigil", "judge_mean", {"route": EVIL}, lo, hi,
                                  judge_dimension=EVIL)
        assert store.query(judged) == []
        drift = q.drift_examples_query("vigil", EVIL, hi)
        assert "'x\\' OR 1=1 --'" in drift
        assert store.query(drift) == []
    finally:
        store.close()


def test_identifiers_are_refused_before_sql(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a column name"):
        q.examples_query("vigil", "latency_p95", {"route = route OR 1": "x"},
                         *_span(), latency_over=1.0)
    with pytest.raises(StoreError, match="not a column name"):
        q.examples_query("vigil", "helpfulness", {}, *_span(), cheap_checks=["1=1) OR (1"])


def _span() -> tuple[Any, Any]:
    from tests.test_alert_queries import NOW_DT
    return NOW_DT - timedelta(hours=1), NOW_DT


def _rule(**fields: Any) -> dict[str, Any]:
    return {"rules": [{"name": "r", "metric": "helpfulness", **fields}]}


@pytest.mark.parametrize(("fields", "message"), [
    ({"split_by": ["route; DROP TABLE x"]}, "split_by"),
    ({"params": {"cheap_checks": ["empty = 1 OR 1"]}}, "cheap_checks"),
    ({"params": {"dimension": ["x"]}}, "dimension"),
    ({"metric": "latency_p95", "params": {"quantile": "0.9)(x"}}, "quantile"),
])
def test_bad_rule_identifiers_are_refused_at_load(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rules(_rule(**fields))


def test_good_rule_params_load() -> None:
    (rule,) = parse_rules(_rule(split_by=["route"], params={"cheap_checks": ["too_long"],
                                                            "dimension": "it's fine"}))
    assert rule.param("cheap_checks") == ["too_long"]


@pytest.mark.parametrize("name", ["vigil; DROP DATABASE x", "a.b", "1abc", "", "x" * 65])
def test_bad_database_name_is_refused_at_load(name: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.database"):
        load_settings(overrides={"store": {"database": name}})


def test_good_database_name_loads() -> None:
    assert load_settings(overrides={"store": {"database": "vigil_prod2"}}).store.database
