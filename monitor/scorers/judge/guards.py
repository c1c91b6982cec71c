"""Guards in front of judge calls: the hourly cost budget and the circuit breaker.

Both refuse a call *before* it is made. The budget is on wall-clock hours (UTC), because
money is spent in real time, not in event time: a replay of last week still costs today.
The breaker opens after consecutive endpoint failures and lets one trial call through after
a cool-down, so a dead endpoint costs one fast failure per event, not a full retry cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("vigil.judge")


class CostBudget:
    """Spend per UTC hour; ``exhausted`` once ``per_hour`` was reached (None: no limit)."""

    def __init__(self, per_hour: float | None, clock: Callable[[], float] = time.time) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._hour = -1
        self._spent = 0.0
        self.total = 0.0

    def _roll(self) -> None:
        hour = int(self._clock() // 3600)
        if hour != self._hour:
            self._hour, self._spent = hour, 0.0

    @property
    def spent_this_hour(self) -> float:
        self._roll()
        return self._spent

    def exhausted(self) -> bool:
        if self.per_hour is None:
            return False
        return self.spent_this_hour >= self.per_hour

    def add(self, cost: float) -> None:
        self._roll()
        self._spent += cost
        self.total += cost


class CircuitBreaker:
    """closed -> (``threshold`` failures in a row) -> open -> (``cooldown_s``) -> half-open."""

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.opened = 0

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open, only one trial at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("judge circuit closed")
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def failure(self) -> None:
        self._failures += 1
        was_trial, self._trial_in_flight = self._trial_in_flight, False
        if was_trial or (self._opened_at is None and self._failures >= self.threshold):
            self._opened_at = self._clock()
            self.opened += 1
            log.warning(
                "judge circuit opened",
                extra={"failures": self._failures, "cooldown_s": self.cooldown_s},
            )
