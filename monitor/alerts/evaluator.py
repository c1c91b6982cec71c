"""The alert evaluator: an event-time timer that tests every rule and segment at ``as_of``.

Each run is a function of the stored data up to ``as_of`` and of the stored alert
transitions, never of the wall clock, so `vigil replay` over history and the live worker
raise the same alerts. The evaluator only coordinates: `monitor.alerts.windows` picks the
spans a rule looks at, `monitor.alerts.evaluation` (or `monitor.alerts.drift_metric` for
the drift rule) tests them, `monitor.alerts.transitions` steps the state machine, stores
the changes and notifies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from monitor.alerts.drift_metric import evaluate_drift
from monitor.alerts.evaluation import RuleEvaluation
from monitor.alerts.model import Outcomes
from monitor.alerts.outbox import Outbox, OutboxTiming
from monitor.alerts.rules import Rule, load_rules
from monitor.alerts.state import AlertState
from monitor.alerts.transitions import TransitionLog
from monitor.alerts.windows import EventWindows
from monitor.config import Settings
from monitor.errors import ConfigError, StoreError
from monitor.notifiers import Notifier, build_notifiers
from monitor.store.base import Store

log = logging.getLogger("vigil.alerts")


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
        self.windows = EventWindows(store)
        self.tests = RuleEvaluation(store)
        a = settings.alerts
        timing = OutboxTiming(
            retries=a.notify_retries,
            backoff_s=a.notify_backoff_s,
            retry_every_s=a.notify_retry_every_s,
            give_up_s=a.notify_give_up_minutes * 60.0,
            drain_s=a.notify_drain_s,
        )
        self.sent: deque[dict[str, Any]] = deque(maxlen=200)
        """The latest notices delivered (for the demo and tests)."""
        self.outbox = Outbox(store, self.notifiers, timing, self.sent)
        self.transitions = TransitionLog(store, self.outbox)

    @property
    def states(self) -> dict[tuple[str, str], AlertState]:
        """Where every (rule, segment) stands."""
        return self.transitions.states

    async def __call__(self, as_of: datetime) -> None:
        await self.outbox.recover()
        rows = await asyncio.to_thread(self.evaluate, as_of)
        if rows:
            await self.transitions.publish(rows)

    async def close(self) -> None:
        await self.transitions.close()
        for notifier in self.notifiers:
            await notifier.close()

    def evaluate(self, as_of: datetime) -> list[dict[str, Any]]:
        """Test every rule at ``as_of`` (sync, in a worker thread); returns the alert rows of
        the state changes."""
        if not self.transitions.loaded:
            self.transitions.load(as_of)
        start = self.windows.stream_start()
        if start is None:
            return []
        rows: list[dict[str, Any]] = []
        for rule in self.rules:
            try:
                outcomes = self._outcomes(rule, as_of, start)
            except StoreError as exc:
                log.warning("alert rule failed", extra={"rule": rule.name, "error": str(exc)[:300]})
                continue
            rows += self.transitions.advance(rule, outcomes, as_of)
        return rows

    def _outcomes(self, rule: Rule, as_of: datetime, start: datetime) -> Outcomes:
        if rule.metric == "drift":
            return evaluate_drift(self.store, rule, as_of)
        spans = self.windows.spans(rule, as_of, start)
        if spans is None:
            return {}
        return self.tests.run(rule, spans, as_of, self.transitions.states)


def alert_timer(settings: Settings, store: Store) -> tuple[float, Callable[[datetime], Any]] | None:
    """(period in seconds, async fn(as_of)) for the pipeline, or None when alerting is off."""
    if not settings.alerts.enabled:
        return None
    return settings.alerts.every_minutes * 60.0, AlertEvaluator(settings, store)
