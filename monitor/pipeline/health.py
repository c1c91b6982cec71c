"""What the pipeline knows about its own health, for readiness and the logs.

One object per pipeline (`Pipeline.health`), written by the pipeline and read by
whoever reports: the worker's ``/readyz`` and ``/metrics``, its progress log line, and
the run summary. Plain attributes on the event loop's thread: no locks needed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Health:
    """The pipeline's view of its dependencies right now."""

    store_ok: bool = True
    """False while a store write is failing and being retried (ingest is paused)."""
    store_failing_since: float | None = None
    """Unix time of the first failed attempt of the write being retried, if any."""
    store_error: str | None = None
    """The last store error, one line, no credentials (`monitor.logs.mask_urls`)."""
    store_retries: int = 0
    """Failed store write attempts since start (all retried; none given up)."""
    backpressured: bool = False
    """True while ingest waits for the store (a write being retried)."""
    timer_errors: Counter[str] = field(default_factory=Counter)
    """Failed runs per event-time timer (drift, alerts, rollups...); each is logged."""

    def store_failed(self, error: str) -> None:
        if self.store_ok:
            self.store_failing_since = time.time()
        self.store_ok = False
        self.backpressured = True
        self.store_error = error
        self.store_retries += 1

    def store_recovered(self) -> None:
        self.store_ok = True
        self.backpressured = False
        self.store_failing_since = None

    @property
    def ready(self) -> bool:
        """Ready to take traffic: the store accepts writes."""
        return self.store_ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "store_ok": self.store_ok,
            "store_failing_for_s": (
                round(time.time() - self.store_failing_since, 1)
                if self.store_failing_since is not None
                else None
            ),
            "store_error": self.store_error,
            "store_retries": self.store_retries,
            "backpressured": self.backpressured,
            "timer_errors": dict(self.timer_errors),
        }
