"""One rule at ``as_of``: per segment, the sequential test over per-minute sums, as an `Outcome`.

The CUSUM is recomputed from per-minute sums over the rule's window on every run
(stateless, cheap in ClickHouse), so late feedback is counted. A baseline over a fixed
span (every kind but rolling) is fetched once and cached. A segment with too little
baseline of its own is tested against all traffic, its false-alarm budget scaled to its
share of that traffic. Once a segment's alert resolved, only its events since then count
towards a new one (`_evidence_start`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.alerts import metrics as am
from monitor.alerts import stats as st
from monitor.alerts.model import (
    Cell,
    Component,
    Outcome,
    Outcomes,
    TestResult,
    sequential_test,
    small_effect,
    total,
)
from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertState, Verdict
from monitor.alerts.windows import Spans
from monitor.store.base import Store
from monitor.store.queries.agreement import latest_agreement

MINUTE = 60

#: (what, rule name, span start, span end) -> a baseline fetched once.
CacheKey = tuple[str, str, datetime, datetime]


def _minute(ts: datetime) -> int:
    return int(ts.timestamp() // MINUTE)


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * MINUTE, tz=UTC)


def vars_of(part: Any) -> dict[str, Any]:
    return {name: getattr(part, name) for name in part.__slots__}


class RuleEvaluation:
    """Tests rules against the store; caches fixed baselines between runs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._baseline_cache: dict[CacheKey, Any] = {}

    def run(
        self,
        rule: Rule,
        spans: Spans,
        as_of: datetime,
        states: Mapping[tuple[str, str], AlertState],
    ) -> Outcomes:
        """The outcome of every segment with data; ``states`` says which ones are firing."""
        b0, b1, w0 = spans
        thresholds: dict[str, float] = {}
        if rule.metric in am.LIMIT_METRICS:
            thresholds = self._cached(
                "limit", rule, b0, b1, lambda: am.baseline_limits(self.store, rule, b0, b1)
            )
            if not thresholds:
                return {}
        limits = thresholds if rule.metric in am.LIMIT_METRICS else None
        if rule.baseline == "others":
            window, segments = am.fetch(self.store, rule, w0, as_of, limits)
            base_series = window
        else:
            base_series, _ = self._cached(
                "base", rule, b0, b1, lambda: am.fetch(self.store, rule, b0, b1, limits)
            )
            window, segments = am.fetch(self.store, rule, w0, as_of, limits)
        judge_weight = self._judge_weight(rule, b0, as_of) if rule.metric == "helpfulness" else None
        comps = am.components(rule, judge_weight)
        base_minutes = (b1 - b0).total_seconds() / 60.0
        pooled = total([c for cells in base_series.values() for c in cells.values()])
        first, last = _minute(w0), _minute(as_of) - 1
        min_base = max(rule.min_sample, 30)
        out: Outcomes = {}
        for key, segment in segments.items():
            cells = window.get(key, {})
            state = states.get((rule.name, key), AlertState())
            begin = _evidence_start(state, first)
            if begin > last:
                continue
            buckets = [cells.get(m, {}) for m in range(begin, last + 1)]
            if rule.baseline == "others":
                own = total(list(cells.values()))
                base = {k: pooled.get(k, 0.0) - own.get(k, 0.0) for k in pooled}
                minutes = base_minutes
            else:
                own_base = total(list(base_series.get(key, {}).values()))
                base, minutes = _baseline_of(
                    comps, own_base, pooled, base_minutes, min_base, cells, window
                )
            restart = (
                _minute(state.fired_at) - begin
                if state.state == "firing" and state.fired_at
                else None
            )
            result = sequential_test(
                comps,
                base,
                minutes,
                buckets,
                alpha=rule.alpha,
                min_sample=rule.min_sample,
                min_base=min_base,
                restart_from=restart,
            )
            if result is None:
                continue
            recent_from = max(0, len(buckets) - int(max(rule.resolve_minutes, 1)))
            verdict = Verdict(
                breached=result.breached,
                last_breach=_at(begin + result.crossings[-1] + 1) if result.crossings else None,
                small_effect=small_effect(comps, base, buckets[recent_from:]),
                onset=_at(begin + result.span_start),
            )
            outcome = self._outcome(
                rule, segment, result, verdict, as_of, thresholds.get(key, thresholds.get("*"))
            )
            if rule.metric == "toxicity_score":
                _add_coverage(outcome, total(buckets[result.span_start :]))
            out[key] = (segment, outcome)
        return out

    def _cached(
        self, what: str, rule: Rule, lo: datetime, hi: datetime, make: Callable[[], Any]
    ) -> Any:
        if rule.baseline == "rolling":
            return make()
        cache_key = (what, rule.name, lo, hi)
        if cache_key not in self._baseline_cache:
            self._baseline_cache[cache_key] = make()
        return self._baseline_cache[cache_key]

    def _judge_weight(self, rule: Rule, lo: datetime, hi: datetime) -> float:
        """The judge's weight: its agreement with human labels when people have labelled
        its verdicts (`vigil evalset agreement`: better ground truth than thumbs), else
        its AUC at telling negative from positive feedback; both shrunk to the prior."""
        prior = float(rule.param("judge_reliability"))
        human = latest_agreement(self.store, str(rule.param("dimension")))
        if human is not None:
            kappa, n = human
            return st.agreement_reliability(kappa, n, prior)
        pairs = am.judge_pairs(self.store, rule, lo, hi)
        good = [v for v, r in pairs if r > 0]
        bad = [-v for v, r in pairs if r < 0]  # higher = worse, so AUC > 0.5 means informative
        measured = st.auc(bad, [-v for v in good])
        return st.reliability(measured, len(bad), len(good), prior)

    def _outcome(
        self,
        rule: Rule,
        segment: dict[str, str],
        result: TestResult,
        verdict: Verdict,
        as_of: datetime,
        limit: float | None,
    ) -> Outcome:
        main = result.parts[0]
        onset = verdict.onset or as_of
        message = _describe(result)
        if limit is not None and rule.metric == "latency_p95":
            message = f"baseline p95 {limit:.0f} ms; " + message
        elif limit is not None:
            message = f"baseline toxicity q{rule.param('quantile'):g} {limit:.3f}; " + message
        query = am.examples_query(rule, self.store.database, segment, onset, as_of, limit)
        details: dict[str, Any] = {
            "parts": [vars_of(p) for p in result.parts],
            "drift_per_day": result.drift_per_day,
            "alpha_per_day": rule.alpha,
        }
        if result.notes:
            details["notes"] = list(result.notes)
            message += "; " + "; ".join(result.notes)
        return Outcome(
            verdict,
            main.value,
            main.baseline,
            result.effect,
            result.stat,
            result.h,
            result.n_span,
            result.confidence,
            message,
            query,
            details,
        )


def _add_coverage(outcome: Outcome, span: Mapping[str, float]) -> None:
    """Say what a scorer-based test cannot see: the share of the evidence span's events
    without a toxicity score (sampled out, over budget, failed, or the scorer off)."""
    events = span.get("en", 0.0)
    if events <= 0:
        return
    unscored = max(0.0, 1.0 - span.get("sn", 0.0) / events)
    outcome.details["unscored_share"] = unscored
    outcome.details["events"] = events
    outcome.message += f"; {100 * unscored:.1f}% of {int(events)} events not toxicity-scored"


def _evidence_start(state: AlertState, first: int) -> int:
    """The first minute whose events may count towards a new alert of one segment.

    The evidence that raised an alert is spent on it: once the alert resolved, only
    events after the resolve count, or the CUSUM over a window still holding the old
    incident (a canary that went quiet, say) would cross again, and page again, as soon
    as the cooldown ran out, without one new event. While firing, the plain test runs
    over the whole window; `sequential_test`'s restart at the firing tells if it holds.
    """
    if state.state == "firing" or state.resolved_at is None:
        return first
    return max(first, _minute(state.resolved_at))


def _baseline_of(
    comps: list[Component],
    own_base: dict[str, float],
    pooled: dict[str, float],
    base_minutes: float,
    min_base: float,
    cells: Mapping[int, Cell],
    window: am.Series,
) -> tuple[dict[str, float], float]:
    """A segment's baseline sums and their length in minutes: its own when big enough,
    else all traffic's."""
    n_key = comps[0].prefix + "n"
    if own_base.get(n_key, 0.0) >= min_base:
        return own_base, base_minutes
    # A new segment (a canary) measured against all traffic sees only its share of the
    # observations a day: scale the false-alarm budget to it.
    mine = sum(c.get(n_key, 0.0) for c in cells.values())
    everyone = sum(c.get(n_key, 0.0) for cs in window.values() for c in cs.values())
    share = min(1.0, max(0.01, mine / everyone)) if everyone > 0 else 1.0
    return pooled, base_minutes / share


def _describe(result: TestResult) -> str:
    described = []
    for part in result.parts:
        if part.n <= 0:
            continue
        if part.kind == "rate":
            text = (
                f"{part.label} {100 * part.value:.1f}% vs {100 * part.baseline:.1f}% "
                f"(n={int(part.n)})"
            )
        else:
            text = f"{part.label} {part.value:.2f} vs {part.baseline:.2f} (n={int(part.n)})"
        if len(result.parts) > 1:
            text += f", weight {part.weight:.2f}, evidence {100 * part.evidence:.0f}%"
        described.append(text)
    return "; ".join(described) or "no observations in the evidence span"
