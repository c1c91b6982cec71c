"""The alert state machine and the rules file: pending, firing, resolved, cooldown, no repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.rules import load_rules, parse_rules
from monitor.alerts.state import AlertState, Timing, Verdict, alert_id, step
from monitor.errors import ConfigError

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TIMING = Timing(for_evals=2, resolve=timedelta(minutes=30), cooldown=timedelta(minutes=60))


def _run(
    verdicts: list[Verdict], state: AlertState | None = None
) -> tuple[AlertState, list[tuple[int, str, bool]]]:
    """Feed one verdict a minute; return the final state and (minute, new state, notify) changes."""
    state = state or AlertState()
    changes: list[tuple[int, str, bool]] = []
    for minute, verdict in enumerate(verdicts):
        change = step(state, verdict, T0 + timedelta(minutes=minute), TIMING)
        if change is not None:
            state = change.state
            if change.old != change.new:
                changes.append((minute, change.new, change.notify))
    return state, changes


BREACH = Verdict(True)
CALM = Verdict(False, small_effect=True)


def test_pending_then_firing_notifies_once_however_long_it_lasts() -> None:
    state, changes = _run([BREACH] * 120)
    assert changes == [(0, "pending", False), (1, "firing", True)]
    assert state.state == "firing" and state.fired_at == T0 + timedelta(minutes=1)


def test_a_transient_breach_clears_without_paging() -> None:
    _, changes = _run([BREACH, CALM, BREACH, CALM])
    assert changes == [
        (0, "pending", False),
        (1, "inactive", False),
        (2, "pending", False),
        (3, "inactive", False),
    ]


def test_resolves_only_after_a_quiet_spell_with_a_small_effect() -> None:
    fired, _ = _run([BREACH, BREACH])
    still_big = Verdict(False, small_effect=False)
    _, changes = _run([still_big] * 90, fired)
    assert changes == []  # hysteresis: quiet but the effect is still large
    calm_from = T0 + timedelta(minutes=1)
    verdicts = [Verdict(False, last_breach=calm_from, small_effect=True)] * 40
    state, changes = _run(verdicts, fired)
    assert changes == [(31, "resolved", True)]  # 30 minutes after the last breach
    assert state.resolved_at == T0 + timedelta(minutes=31)


def test_re_confirmed_breaches_keep_it_firing() -> None:
    fired, _ = _run([BREACH, BREACH])
    verdicts = [
        Verdict(False, last_breach=T0 + timedelta(minutes=m), small_effect=True) for m in range(60)
    ]
    _, changes = _run(verdicts, fired)
    assert changes == []


def test_cooldown_holds_a_new_breach_pending_then_fires_a_new_alert() -> None:
    resolved = AlertState("resolved", T0, 0, T0 - timedelta(hours=2), T0, T0 - timedelta(hours=2))
    state, changes = _run([BREACH] * 70, resolved)
    assert changes == [(0, "pending", False), (60, "firing", True)]
    assert state.fired_at == T0 + timedelta(minutes=60)
    assert alert_id("r", "k", state.fired_at) != alert_id("r", "k", resolved.fired_at)


def test_for_evals_one_fires_at_once() -> None:
    change = step(AlertState(), BREACH, T0, Timing(1, timedelta(minutes=5), timedelta(0)))
    assert change is not None and change.new == "firing" and change.notify


def test_alert_ids_are_stable() -> None:
    assert alert_id("r", "k", T0) == alert_id("r", "k", T0)
    assert alert_id("r", "k", T0) != alert_id("r", "k2", T0)


def test_default_rules_load_and_cover_the_issue() -> None:
    rules = {rule.name: rule for rule in load_rules()}
    metrics = {rule.metric for rule in rules.values()}
    assert {
        "helpfulness",
        "negative_feedback_rate",
        "incident_rate",
        "drift",
        "latency_p95",
        "json_failure_rate",
        "judge_failure_rate",
    } <= metrics
    assert rules["helpfulness_drop"].split_by == ["model_version"]


def test_bad_rules_name_the_rule_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rule x: min_sample"):
        parse_rules({"rules": [{"name": "x", "metric": "negative_feedback_rate", "min_sample": 0}]})
    with pytest.raises(ConfigError, match="unknown field"):
        parse_rules({"rules": [{"name": "x", "metric": "negative_feedback_rate", "bogus": 1}]})
    with pytest.raises(ConfigError, match="duplicate"):
        parse_rules({"rules": [{"name": "x", "metric": "drift"}, {"name": "x", "metric": "drift"}]})
    with pytest.raises(ConfigError, match="risk_type"):
        parse_rules(
            {"rules": [{"name": "x", "metric": "json_failure_rate", "split_by": ["risk_type"]}]}
        )
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: mine\n    metric: latency_p95\n    split_by: [route]\n")
    assert [r.name for r in load_rules(path)] == ["mine"]
    with pytest.raises(ConfigError, match="alert rules"):
        load_rules(tmp_path / "missing.yaml")
