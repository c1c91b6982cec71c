"""Failure capture: the capture rules applied, in event time, to what the pipeline stored.

`capture_timer` is the pipeline's event-time timer (registered in `monitor.assembly`, so
`vigil replay` and the live worker capture the same failures from the same events). At
each firing ``as_of`` it reads ``[as_of - lookback, as_of]`` (both ends: the last firing
of a replay is at the time of the last event) and writes one ``failures`` row per (event,
rule). Rows are keyed by (event_id, reason), so the overlapping windows of successive
firings rewrite the same rows, and scores, verdicts and feedback that arrive late, within
the lookback, are still picked up.

Each rule kind is one batched query per firing (the check-based kinds share one scan of
``checks``); nothing here queries per event.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Settings
from monitor.errors import StoreError
from monitor.evalset.rules import (
    CHECK_KINDS,
    AlertRule,
    AnyRule,
    FeedbackRule,
    JudgeRule,
    PiiRule,
    ToxicityRule,
    load_capture_rules,
)
from monitor.store.base import Store
from monitor.store.queries import failures as q
from monitor.times import iso, now_iso

log = logging.getLogger("vigil.evalset.capture")

#: ``failures`` columns, in the order every row is built.
FAILURE_COLUMNS = (
    "event_id", "ts", "route", "model", "model_version", "reason", "kind", "detail",
    "score", "alert_id", "topic", "rule_version", "captured_at",
)  # fmt: skip
_DETAIL_CHARS = 120


def _number(value: float) -> str:
    return f"{value:.3g}"


def _row(
    keys: dict[str, Any],
    rule: AnyRule,
    detail: str,
    score: float | None,
    alert_id: str,
    now: str,
) -> dict[str, Any]:
    # The topic is the route: drift clusters describe windows, not single events.
    route = keys["route"] or ""
    return {
        "event_id": keys["event_id"],
        "ts": keys["ts"],
        "route": route,
        "model": keys["model"],
        "model_version": keys["model_version"],
        "reason": rule.name,
        "kind": rule.kind,
        "detail": detail[:_DETAIL_CHARS],
        "score": score,
        "alert_id": alert_id,
        "topic": route,
        "rule_version": rule.version,
        "captured_at": now,
    }


def _check_detail(rule: AnyRule, row: dict[str, Any]) -> str | None:
    """The detail of ``rule``'s failure in one ``checks`` row, or None when it passes."""
    kind = rule.kind
    if kind == "pii":
        assert isinstance(rule, PiiRule)
        found = [k for k in row["pii_kinds"] if not rule.pii_kinds or k in rule.pii_kinds]
        return "pii=" + ",".join(sorted(found)) if found else None
    if kind == "format":
        # json_ok is NULL (None) where no text was captured: not a format failure.
        failed = row["json_required"] and row["json_ok"] in (0, False)
        return f"json: {row['json_error']}" if failed else None
    if kind == "empty":
        return "empty" if row["empty"] else None
    if kind == "truncated":
        return "finish_reason=length" if row["truncated"] else None
    if kind == "jailbreak":
        answered = row["jailbreak_kinds"] and not row["refusal"]
        return "jailbreak=" + ",".join(sorted(row["jailbreak_kinds"])) if answered else None
    return None


def _alert_rows(
    store: Store, rule: AlertRule, lo: datetime, hi: datetime, now: str
) -> list[dict[str, Any]]:
    members: dict[str, set[str]] = defaultdict(set)
    rules_of: dict[str, str] = {}
    for alert in q.firing_alerts(store, lo, hi):
        if rule.alert_rules and alert["rule"] not in rule.alert_rules:
            continue
        try:
            examples = q.run_examples(store, alert["query"])
        except StoreError as exc:
            log.warning(
                "alert example query failed",
                extra={"alert_id": alert["alert_id"], "error": str(exc)[:300]},
            )
            continue
        # Only queries that list events (first column event_id): a drift alert's
        # examples are reports, not events.
        if not examples or next(iter(examples[0])) != "event_id":
            continue
        rules_of[alert["alert_id"]] = alert["rule"]
        for example in examples:
            members[str(example["event_id"])].add(alert["alert_id"])
    if not members:
        return []
    # An event keeps every alert it was ever an example of: merge with what is stored.
    stored = q.stored_alert_ids(store, rule.name, list(members))
    rows = []
    for keys in q.event_keys(store, list(members)):
        ids = members[keys["event_id"]] | set(
            filter(None, stored.get(keys["event_id"], "").split(","))
        )
        names = sorted({rules_of.get(a, "") for a in members[keys["event_id"]]} - {""})
        rows.append(_row(keys, rule, "alert=" + ",".join(names), None, ",".join(sorted(ids)), now))
    return rows


def collect_failures(
    store: Store, rules: list[AnyRule], lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    """The ``failures`` rows the rules find for events in ``[lo, hi]`` (not written)."""
    now = now_iso()
    rows: list[dict[str, Any]] = []
    check_rules = [rule for rule in rules if rule.kind in CHECK_KINDS]
    if check_rules:
        for row in q.check_failures(store, lo, hi):
            for rule in check_rules:
                detail = _check_detail(rule, row)
                if detail is not None:
                    rows.append(_row(row, rule, detail, None, "", now))
    for rule in rules:
        if isinstance(rule, JudgeRule):
            for row in q.judge_failures(store, rule.dimension, rule.threshold, lo, hi):
                value = float(row["value"])
                detail = f"{rule.dimension}={_number(value)}"
                rows.append(_row(row, rule, detail, value, "", now))
        elif isinstance(rule, ToxicityRule):
            found = q.score_failures(store, rule.scorer, rule.score_name, rule.threshold, lo, hi)
            for row in found:
                value = float(row["value"])
                detail = f"{rule.score_name}={_number(value)}"
                rows.append(_row(row, rule, detail, value, "", now))
        elif isinstance(rule, FeedbackRule):
            for row in q.feedback_failures(store, rule.max_rating, lo, hi):
                rating = int(row["rating"])
                rows.append(_row(row, rule, f"rating={rating}", float(rating), "", now))
        elif isinstance(rule, AlertRule):
            rows.extend(_alert_rows(store, rule, lo, hi, now))
    return rows


def capture_window(store: Store, rules: list[AnyRule], lo: datetime, hi: datetime) -> Counter[str]:
    """Capture the failures of events in ``[lo, hi]``; returns rows written per reason."""
    rows = collect_failures(store, rules, lo, hi)
    if rows:
        store.insert("failures", [{c: row[c] for c in FAILURE_COLUMNS} for row in rows])
    counts = Counter(row["reason"] for row in rows)
    log.info(
        "failures captured",
        extra={"since": iso(lo), "until": iso(hi), "rows": len(rows), "by_reason": dict(counts)},
    )
    return counts


def capture_span(
    settings: Settings, store: Store, since: datetime, until: datetime
) -> Counter[str]:
    """Capture one span of event time at once with the configured rules (a backfill, or
    a benchmark); the timer does the same in steps as event time passes."""
    return capture_window(
        store, load_capture_rules(settings.evalset.capture.rules_file), since, until
    )


class CaptureTimer:
    """The event-time job: at ``as_of``, capture ``[as_of - lookback, as_of]``."""

    def __init__(self, store: Store, rules: list[AnyRule], lookback_minutes: float) -> None:
        self.store = store
        self.rules = rules
        self.lookback = timedelta(minutes=lookback_minutes)

    async def __call__(self, as_of: datetime) -> None:
        try:
            await asyncio.to_thread(self.run, as_of)
        except StoreError as exc:
            # A failed capture must not stop ingestion; the next firing covers the window.
            log.warning(
                "failure capture failed", extra={"as_of": iso(as_of), "error": str(exc)[:300]}
            )

    def run(self, as_of: datetime) -> Counter[str]:
        return capture_window(self.store, self.rules, as_of - self.lookback, as_of)


def capture_timer(
    settings: Settings, store: Store
) -> tuple[float, Callable[[datetime], Awaitable[None]]] | None:
    """(period in seconds, async fn(as_of)) for the pipeline; None when capture is off.
    The rules are loaded here, so a bad rules file stops start-up (`ConfigError`)."""
    c = settings.evalset.capture
    if not c.enabled:
        return None
    rules = load_capture_rules(c.rules_file)
    return c.every_minutes * 60.0, CaptureTimer(store, rules, c.lookback_minutes)
