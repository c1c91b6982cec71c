"""Alert queries against a real embedded store, for shapes the default rules do not use."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from monitor.alerts.metrics import segment_key
from monitor.checks import Heuristics
from monitor.config import HeuristicsSettings
from monitor.store.embedded import EmbeddedStore
from monitor.store.queries import alerts as q
from tests.fixtures import rows as fixture_rows
from tests.test_store_backends import NOW, make_events

NOW_DT = datetime.fromisoformat(NOW)


def test_slow_requests_split_by_two_dimensions(tmp_path: Path) -> None:
    """A latency limit per segment of two dimensions: the SQL's segment key must equal
    the one the alert code computes, or every segment falls back to the default limit."""
    store = EmbeddedStore(tmp_path / "data", "vigil", 30)
    try:
        store.migrate()
        events = make_events(40)
        heuristics = Heuristics(HeuristicsSettings())
        store.insert("checks", [fixture_rows.check_row(e, heuristics.check(e)) for e in events])
        dims = ["route", "model_version"]
        first = events[0]
        key = segment_key({"route": first.route, "model_version": first.model_version})
        lo = min(e.ts for e in events) - timedelta(minutes=1)
        hi = max(e.ts for e in events) + timedelta(minutes=1)
        # A limit of -1 ms for that one segment: each of its requests counts as slow;
        # an infinite default for every other segment: none of theirs does.
        rows = q.slow_request_minutes(store, dims, lo, hi, q.Limits([key], [-1.0], float("inf")))
        slow = sum(int(r["x"]) for r in rows)
        expected = sum(
            1
            for e in events
            if (e.route, e.model_version) == (first.route, first.model_version)
            and e.response.latency_ms is not None
        )
        assert expected > 0
        assert slow == expected
    finally:
        store.close()


def test_human_agreement_sets_the_judge_weight(tmp_path: Path) -> None:
    """Once people have labelled the judge's verdicts, the helpfulness rule weighs the
    judge by that agreement instead of by its agreement with thumbs."""
    from monitor.alerts import stats as st
    from monitor.alerts.evaluation import RuleEvaluation
    from monitor.alerts.rules import load_rules
    from monitor.store.queries.agreement import store_agreement

    rule = next(r for r in load_rules() if r.metric == "helpfulness")
    prior = float(rule.param("judge_reliability"))
    store = EmbeddedStore(tmp_path / "data", "vigil", 30)
    try:
        store.migrate()
        evaluation = RuleEvaluation(store)
        lo, hi = NOW_DT - timedelta(hours=4), NOW_DT
        assert evaluation._judge_weight(rule, lo, hi) == prior  # no feedback pairs, no labels
        store_agreement(
            store,
            [
                {
                    "evalset": "support", "version": "v1", "judge_version": "",
                    "dimension": str(rule.param("dimension")), "n": 90, "kappa": 0.8,
                    "kappa_kind": "quadratic", "kappa_low": 0.7, "kappa_high": 0.9,
                    "spearman": 0.8, "measured_at": NOW_DT,
                }
            ],
        )  # fmt: skip
        weight = evaluation._judge_weight(rule, lo, hi)
        assert weight == st.agreement_reliability(0.8, 90, prior)
        assert prior < weight < 0.8
    finally:
        store.close()


def test_agreement_reliability_shrinks_to_the_prior() -> None:
    from monitor.alerts import stats as st

    assert st.agreement_reliability(float("nan"), 50, 0.2) == 0.2
    assert st.agreement_reliability(0.9, 0, 0.2) == 0.2
    assert st.agreement_reliability(0.9, 30, 0.2) == 0.55  # halfway at 30 items
    assert st.agreement_reliability(-0.5, 1000, 0.2) < 0.01  # worse than chance: ~0
    assert st.agreement_reliability(0.9, 10_000, 0.2) > 0.89
