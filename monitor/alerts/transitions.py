"""Alert transitions: the states resumed from table ``alerts``, stepped, stored, notified once.

A restart needs nothing but the ``alerts`` table, whose latest row per (rule, segment) is
the state to resume from. Only state changes become rows; a transition already stored as
notified (a replay over the same history, a restart) is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from monitor.alerts.model import Outcome, Outcomes
from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertState, Timing, Transition, Verdict, alert_id, step
from monitor.notifiers import Notifier, deliver
from monitor.store.base import Store
from monitor.store.queries import alerts as q
from monitor.times import now_iso, optional_iso, parse_optional_ts

log = logging.getLogger("vigil.alerts")


class TransitionLog:
    """The alert state of every (rule, segment), and the rows and notices of its changes."""

    def __init__(
        self,
        store: Store,
        notifiers: Sequence[Notifier],
        *,
        retries: int,
        backoff_s: float,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.retries = retries
        self.backoff_s = backoff_s
        self.states: dict[tuple[str, str], AlertState] = {}
        self.loaded = False
        self.sent: deque[dict[str, Any]] = deque(maxlen=200)
        """The latest notices sent (for the demo and tests)."""

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
        """Notify the transitions that page (unless already notified), then store all rows."""
        for row in rows:
            if row.pop("_notify"):
                already = await asyncio.to_thread(self._already_notified, row)
                if not already:
                    notice = notice_from_row(row)
                    results = await deliver(
                        self.notifiers, notice, retries=self.retries, backoff_s=self.backoff_s
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

    def _already_notified(self, row: dict[str, Any]) -> bool:
        return q.was_notified(
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
