"""Alert transitions: the states resumed from table ``alerts``, stepped, stored, notified once.

A restart needs nothing but the ``alerts`` table, whose latest row per (rule, segment) is
the state to resume from. Only state changes become rows. A change that pages is stored
as queued and sent by the outbox (`monitor.alerts.outbox`); a transition already stored
with its notice (a replay over the same history, a restart) is never queued again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from monitor.alerts.model import Outcome, Outcomes
from monitor.alerts.outbox import Outbox
from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertState, Timing, Transition, Verdict, alert_id, step
from monitor.store.base import Store
from monitor.store.queries import alerts as q
from monitor.times import now_iso, optional_iso, parse_optional_ts

log = logging.getLogger("vigil.alerts")


class TransitionLog:
    """The alert state of every (rule, segment), and the rows and notices of its changes."""

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.states: dict[tuple[str, str], AlertState] = {}
        self.loaded = False

    def load(self, as_of: datetime) -> None:
        """Resume every state from its latest stored transition at or before ``as_of``."""
        for row in q.latest_alert_states(self.store, as_of):
            self.states[(row["rule"], row["segment_key"])] = AlertState(
                row["state"],
                parse_optional_ts(row["ts"]),
                int(row["breaches"]),
                parse_optional_ts(row["fired_at"]),
                parse_optional_ts(row["resolved_at"]),
                parse_optional_ts(row["onset"]),
            )
        self.loaded = True

    def advance(self, rule: Rule, outcomes: Outcomes, as_of: datetime) -> list[dict[str, Any]]:
        """Step every segment of ``rule`` at ``as_of``; the alert rows of its state changes."""
        timing = Timing(
            rule.for_evals,
            timedelta(minutes=rule.resolve_minutes),
            timedelta(minutes=rule.cooldown_minutes),
        )
        rows: list[dict[str, Any]] = []
        seen = set()
        for key, (segment, outcome) in outcomes.items():
            seen.add(key)
            self._step(rule, key, segment, outcome, as_of, timing, rows)
        # A segment with no traffic at all this run still has to resolve or clear.
        for (name, key), state in list(self.states.items()):
            if name == rule.name and key not in seen and state.state in ("pending", "firing"):
                self._step(rule, key, _segment_of(key), _quiet(), as_of, timing, rows)
        return rows

    def _step(
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
        rows.append(_row(rule, key, segment, change, outcome, as_of))

    async def publish(self, rows: list[dict[str, Any]]) -> None:
        """Store every row, those that page as QUEUED, and hand those to the outbox.

        Nothing is sent here: delivery runs in the outbox's task, so the caller (the
        evaluator's timer, and the Kafka commit behind it) never waits on a webhook."""
        await self.outbox.recover()
        queued = []
        for row in rows:
            if not row.pop("_notify"):
                continue
            status = await asyncio.to_thread(self._notice_status, row)
            if status == q.NOTICE_NONE:
                row["notified"] = q.NOTICE_QUEUED
                queued.append(row)
            else:
                # Stepped into again (a replay over the same history, a restart): the
                # notice keeps its fate, and a queued one is already in the outbox.
                row["notified"] = status
        await asyncio.to_thread(self.store.insert, "alerts", rows)
        self.outbox.put(queued)

    async def close(self) -> None:
        """Deliver what is queued (up to ``alerts.notify_drain_s``), then stop the outbox."""
        await self.outbox.close()

    def _notice_status(self, row: dict[str, Any]) -> int:
        return q.notice_status(
            self.store, row["rule"], row["segment_key"], row["state"], parse_optional_ts(row["ts"])
        )


def _quiet() -> Outcome:
    return Outcome(
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


def _row(
    rule: Rule,
    key: str,
    segment: dict[str, str],
    change: Transition,
    outcome: Outcome,
    as_of: datetime,
) -> dict[str, Any]:
    s = change.state
    aid = alert_id(rule.name, key, s.fired_at if change.new in ("firing", "resolved") else s.since)
    # Not SQL: the CLI command that runs the stored `query` (`vigil alerts --examples`).
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
