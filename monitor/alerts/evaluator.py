"""The alert evaluator: an event-time timer that tests every rule and segment at ``as_of``.

Each run is a function of the stored data up to ``as_of`` and of the stored alert
transitions, never of the wall clock, so `vigil replay` over history and the live worker
raise the same alerts. The CUSUM is recomputed from per-minute sums over the rule's
window on every run (stateless, cheap in ClickHouse), so late feedback is counted and a
restart needs nothing but the ``alerts`` table, whose latest row per (rule, segment) is
the state to resume from. A transition already stored as notified is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from monitor.alerts import metrics as am
from monitor.alerts import stats as st
from monitor.alerts.drift_metric import evaluate_drift
from monitor.alerts.model import Outcome, TestResult, sequential_test, small_effect, total
from monitor.alerts.rules import Rule, load_rules
from monitor.alerts.state import AlertState, Timing, Transition, Verdict, alert_id, step
from monitor.config import Settings
from monitor.errors import ConfigError, StoreError
from monitor.notifiers import Notifier, build_notifiers, deliver
from monitor.store.base import Store
from monitor.times import now_iso, optional_iso, parse_optional_ts

log = logging.getLogger("vigil.alerts")

MINUTE = 60


def _minute(ts: datetime) -> int:
    return int(ts.timestamp() // MINUTE)


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * MINUTE, tz=UTC)


class AlertEvaluator:
    """Callable as an event-time timer: ``await evaluator(as_of)``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        rules: list[Rule] | None = None,
        notifiers: list[Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules if rules is not None else load_rules(settings.alerts.rules_file)
        for rule in self.rules:
            if "topic" in rule.split_by:
                raise ConfigError(
                    f"rule {rule.name}: split_by topic needs per-event topic clusters, "
                    "which no stage stores yet"
                )
        self.notifiers = notifiers if notifiers is not None else build_notifiers(settings.alerts)
        self.states: dict[tuple[str, str], AlertState] = {}
        self._loaded = False
        self._stream_start: datetime | None = None
        self._baseline_cache: dict[tuple[str, str, datetime, datetime], Any] = {}
        self.sent: deque[dict[str, Any]] = deque(maxlen=200)
        """The latest notices this evaluator sent (for the demo and tests)."""

    # -- the timer ---------------------------------------------------------------------

    async def __call__(self, as_of: datetime) -> None:
        rows = await asyncio.to_thread(self.evaluate, as_of)
        if not rows:
            return
        for row in rows:
            if row.pop("_notify"):
                already = await asyncio.to_thread(self._already_notified, row)
                if not already:
                    notice = notice_from_row(row)
                    results = await deliver(
                        self.notifiers,
                        notice,
                        retries=self.settings.alerts.notify_retries,
                        backoff_s=self.settings.alerts.notify_backoff_s,
                    )
                    self.sent.append(notice)
                    log.info(
                        "alert",
                        extra={
                            "rule": row["rule"],
                            "segment": row["segment_key"],
                            "state": row["state"],
                            "alert_id": row["alert_id"],
                            "delivered": results,
                        },
                    )
                row["notified"] = 1
        await asyncio.to_thread(self.store.insert, "alerts", rows)

    async def close(self) -> None:
        for notifier in self.notifiers:
            await notifier.close()

    # -- evaluation (sync, in a worker thread) ----------------------------------------------

    def evaluate(self, as_of: datetime) -> list[dict[str, Any]]:
        """Test every rule at ``as_of``; returns the alert rows of the state changes."""
        if not self._loaded:
            self._load_states(as_of)
        start = self._start()
        if start is None:
            return []
        rows: list[dict[str, Any]] = []
        for rule in self.rules:
            try:
                outcomes = self._evaluate_rule(rule, as_of, start)
            except StoreError as exc:
                log.warning("alert rule failed", extra={"rule": rule.name, "error": str(exc)[:300]})
                continue
            timing = Timing(
                rule.for_evals,
                timedelta(minutes=rule.resolve_minutes),
                timedelta(minutes=rule.cooldown_minutes),
            )
            seen = set()
            for key, (segment, outcome) in outcomes.items():
                seen.add(key)
                self._advance(rule, key, segment, outcome, as_of, timing, rows)
            # A segment with no traffic at all this run still has to resolve or clear.
            for (name, key), state in list(self.states.items()):
                if name == rule.name and key not in seen and state.state in ("pending", "firing"):
                    quiet = Outcome(
                        Verdict(False, None, True),
                        math.nan,
                        math.nan,
                        math.nan,
                        0.0,
                        0.0,
                        0,
                        0.0,
                        "no recent traffic",
                        "",
                        {},
                    )
                    self._advance(rule, key, _segment_of(key), quiet, as_of, timing, rows)
        return rows

    def _advance(
        self,
        rule: Rule,
        key: str,
        segment: dict[str, str],
        outcome: Outcome,
        as_of: datetime,
        timing: Timing,
        rows: list[dict[str, Any]],
    ) -> None:
        prev = self.states.get((rule.name, key), AlertState())
        change: Transition | None = step(prev, outcome.verdict, as_of, timing)
        if change is None:
            return
        self.states[(rule.name, key)] = change.state
        if change.old == change.new:
            return
        rows.append(self._row(rule, key, segment, change, outcome, as_of))

    def _start(self) -> datetime | None:
        if self._stream_start is None:
            got = self.store.query(
                f"SELECT count() AS n, min(ts) AS t FROM {self.store.database}.checks"
            )
            if got and int(got[0]["n"]) > 0:
                self._stream_start = parse_optional_ts(got[0]["t"])
        return self._stream_start

    def _pinned(self) -> tuple[datetime, datetime] | None:
        # `alerts.baseline` if set, else the span `vigil baseline pin` stored for drift
        # (all versions): one pinned "known good" period serves both jobs.
        rows = self.store.query(
            f"SELECT key, argMax(value, updated_at) AS v FROM {self.store.database}.state "
            "WHERE key IN ('alerts.baseline', 'drift.baseline') GROUP BY key"
        )
        values = {row["key"]: row["v"] for row in rows if row["v"]}
        key = "alerts.baseline" if "alerts.baseline" in values else "drift.baseline"
        if key not in values:
            return None
        try:
            data = orjson.loads(values[key])
            lo, hi = parse_optional_ts(data["start"]), parse_optional_ts(data["end"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f'state {key} must be JSON {{"start": ..., "end": ...}}') from exc
        return (lo, hi) if lo and hi else None

    def _windows(
        self, rule: Rule, as_of: datetime, start: datetime
    ) -> tuple[datetime, datetime, datetime] | None:
        """(baseline start, baseline end, test-window start), or None while still learning."""
        window = timedelta(minutes=rule.window_minutes)
        base = timedelta(minutes=rule.baseline_minutes)
        if rule.baseline == "rolling":
            b1 = as_of - window
            return b1 - base, b1, b1
        if rule.baseline == "others":
            w0 = max(start, as_of - window)
            return w0, as_of, w0
        pinned = self._pinned() if rule.baseline == "pinned" else None
        b0, b1 = pinned if pinned else (start, start + base)
        if as_of < b1 + timedelta(minutes=1):
            return None
        return b0, b1, max(b1, as_of - window)

    def _evaluate_rule(
        self, rule: Rule, as_of: datetime, start: datetime
    ) -> dict[str, tuple[dict[str, str], Outcome]]:
        if rule.metric == "drift":
            return evaluate_drift(self.store, rule, as_of)
        spans = self._windows(rule, as_of, start)
        if spans is None:
            return {}
        b0, b1, w0 = spans
        extra: dict[str, Any] = {}
        thresholds: dict[str, float] = {}
        if rule.metric == "latency_p95":
            thresholds = self._cached(
                "p95", rule, b0, b1, lambda: am.latency_thresholds(self.store, rule, b0, b1)
            )
            if not thresholds:
                return {}
            keys = [k for k in thresholds if k != "*"] or ["-"]
            extra = {
                "keys": keys,
                "vals": [thresholds.get(k, 0.0) for k in keys],
                "dflt": thresholds.get("*", 0.0),
            }
        if rule.baseline == "others":
            window, segments = am.fetch(self.store, rule, w0, as_of, **extra)
            base_series = window
        else:
            base_series, _ = self._cached(
                "base", rule, b0, b1, lambda: am.fetch(self.store, rule, b0, b1, **extra)
            )
            window, segments = am.fetch(self.store, rule, w0, as_of, **extra)
        judge_weight = self._judge_weight(rule, b0, as_of) if rule.metric == "helpfulness" else None
        comps = am.components(rule, judge_weight)
        base_minutes = (b1 - b0).total_seconds() / 60.0
        pooled = total([c for cells in base_series.values() for c in cells.values()])
        first, last = _minute(w0), _minute(as_of) - 1
        min_base = max(rule.min_sample, 30)
        out: dict[str, tuple[dict[str, str], Outcome]] = {}
        for key, segment in segments.items():
            cells = window.get(key, {})
            buckets = [cells.get(m, {}) for m in range(first, last + 1)]
            minutes = base_minutes
            if rule.baseline == "others":
                own = total(list(cells.values()))
                base = {k: pooled.get(k, 0.0) - own.get(k, 0.0) for k in pooled}
            else:
                own_base = total(list(base_series.get(key, {}).values()))
                main_n = own_base.get(comps[0].prefix + "n", 0.0)
                base = own_base if main_n >= min_base else pooled
                if main_n < min_base:
                    # A new segment (a canary) measured against all traffic sees only its
                    # share of the observations a day: scale the false-alarm budget to it.
                    n_key = comps[0].prefix + "n"
                    mine = sum(c.get(n_key, 0.0) for c in cells.values())
                    everyone = sum(c.get(n_key, 0.0) for cs in window.values() for c in cs.values())
                    share = min(1.0, max(0.01, mine / everyone)) if everyone > 0 else 1.0
                    minutes = base_minutes / share
            state = self.states.get((rule.name, key), AlertState())
            restart = (
                _minute(state.fired_at) - first
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
                last_breach=_at(first + result.crossings[-1] + 1) if result.crossings else None,
                small_effect=small_effect(comps, base, buckets[recent_from:]),
                onset=_at(first + result.span_start),
            )
            out[key] = (
                segment,
                self._outcome(
                    rule, segment, result, verdict, as_of, thresholds.get(key, thresholds.get("*"))
                ),
            )
        return out

    def _cached(self, what: str, rule: Rule, lo: datetime, hi: datetime, make: Any) -> Any:
        if rule.baseline == "rolling":
            return make()
        cache_key = (what, rule.name, lo, hi)
        if cache_key not in self._baseline_cache:
            self._baseline_cache[cache_key] = make()
        return self._baseline_cache[cache_key]

    def _judge_weight(self, rule: Rule, lo: datetime, hi: datetime) -> float:
        """The judge's weight: its AUC at telling negative from positive feedback (shrunk)."""
        pairs = am.judge_pairs(self.store, rule, lo, hi)
        good = [v for v, r in pairs if r > 0]
        bad = [-v for v, r in pairs if r < 0]  # higher = worse, so AUC > 0.5 means informative
        measured = st.auc(bad, [-v for v in good])
        return st.reliability(measured, len(bad), len(good), float(rule.param("judge_reliability")))

    def _outcome(
        self,
        rule: Rule,
        segment: dict[str, str],
        result: TestResult,
        verdict: Verdict,
        as_of: datetime,
        latency_threshold: float | None,
    ) -> Outcome:
        main = result.parts[0]
        onset = verdict.onset or as_of
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
        message = "; ".join(described) or "no observations in the evidence span"
        if latency_threshold is not None:
            message = f"baseline p95 {latency_threshold:.0f} ms; " + message
        query = am.examples_sql(rule, self.store.database, segment, onset, as_of, latency_threshold)
        details = {
            "parts": [vars_of(p) for p in result.parts],
            "drift_per_day": result.drift_per_day,
            "alpha_per_day": rule.alpha,
        }
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

    # -- persistence -----------------------------------------------------------------------

    def _load_states(self, as_of: datetime) -> None:
        rows = self.store.query(
            f"SELECT rule, segment_key, state, ts, onset, fired_at, resolved_at, breaches "
            f"FROM {self.store.database}.alerts FINAL WHERE ts <= {{as_of:DateTime64}} "
            "ORDER BY ts DESC LIMIT 1 BY rule, segment_key",
            {"as_of": as_of},
        )
        for row in rows:
            self.states[(row["rule"], row["segment_key"])] = AlertState(
                row["state"],
                parse_optional_ts(row["ts"]),
                int(row["breaches"]),
                parse_optional_ts(row["fired_at"]),
                parse_optional_ts(row["resolved_at"]),
                parse_optional_ts(row["onset"]),
            )
        self._loaded = True

    def _already_notified(self, row: dict[str, Any]) -> bool:
        got = self.store.query(
            f"SELECT max(notified) AS n FROM {self.store.database}.alerts "
            "WHERE rule = {rule:String} "
            "AND segment_key = {key:String} AND state = {state:String} AND ts = {ts:DateTime64}",
            {
                "rule": row["rule"],
                "key": row["segment_key"],
                "state": row["state"],
                "ts": parse_optional_ts(row["ts"]),
            },
        )
        return bool(got and int(got[0]["n"] or 0))

    def _row(
        self,
        rule: Rule,
        key: str,
        segment: dict[str, str],
        change: Transition,
        outcome: Outcome,
        as_of: datetime,
    ) -> dict[str, Any]:
        s = change.state
        aid = alert_id(
            rule.name, key, s.fired_at if change.new in ("firing", "resolved") else s.since
        )
        command = f"vigil alerts --examples {aid}" if outcome.query else ""
        return {
            "alert_id": aid,
            "rule": rule.name,
            "metric": rule.metric,
            "severity": rule.severity,
            "segment": segment,
            "segment_key": key,
            "state": change.new,
            "previous": change.old,
            "reason": change.reason,
            "ts": optional_iso(as_of),
            "onset": optional_iso(s.onset),
            "fired_at": optional_iso(s.fired_at),
            "resolved_at": optional_iso(s.resolved_at),
            "breaches": s.breaches,
            "value": _finite(outcome.value),
            "baseline": _finite(outcome.baseline),
            "effect": _finite(outcome.effect),
            "statistic": _finite(outcome.statistic),
            "threshold": _finite(outcome.threshold),
            "n": int(outcome.n),
            "confidence": _finite(outcome.confidence),
            "message": outcome.message,
            "query": outcome.query,
            "command": command,
            "details": orjson.dumps(outcome.details, default=str).decode(),
            "notified": 0,
            "created_at": now_iso(),
            "_notify": change.notify,
        }


def _finite(value: float) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def _segment_of(key: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in key.split(",") if "=" in part)


def vars_of(part: Any) -> dict[str, Any]:
    return {name: getattr(part, name) for name in part.__slots__}


def notice_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The notice notifiers receive: the alert row, details parsed, internals dropped."""
    notice = {
        k: v
        for k, v in row.items()
        if not k.startswith("_") and k not in ("created_at", "notified")
    }
    if isinstance(notice.get("details"), str):
        with contextlib.suppress(orjson.JSONDecodeError):
            notice["details"] = orjson.loads(notice["details"])
    return notice
