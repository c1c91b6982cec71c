"""What the events consumer last said about the broker: connections and lag.

Written by the Kafka wiring (`streams.consumer_stats`, on the consumer's own thread, from
librdkafka's statistics and error callbacks), read by `monitor.ops.readiness` and
`monitor.ops.metrics` on the event loop. Each update rebinds whole values, never mutates
one in place, so a reader on the other thread always sees a consistent report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

BrokerStatus = Literal["connecting", "up", "down"]


@dataclass
class BrokerState:
    """The events consumer's view of the broker (`monitor.ops`: readiness and metrics)."""

    status: BrokerStatus = "connecting"
    """connecting (not reached yet), up (a broker connection is up), down."""
    error: str | None = None
    """Why it is down (the client's last error), one line."""
    brokers: dict[str, str] = field(default_factory=dict)
    """Each broker connection of the client and its state (UP, DOWN, CONNECT...)."""
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    """Per assigned (topic, partition): the newest offset minus the committed one."""
    reported_at: float | None = None
    """Unix time of the last statistics report (they come with fetches)."""

    def connected(self) -> None:
        """The consumer reached the broker (its first metadata request answered)."""
        self.status, self.error = "up", None

    def report(self, brokers: dict[str, str], lag: dict[tuple[str, int], int]) -> None:
        """A statistics report: up while at least one broker connection is."""
        self.brokers, self.lag, self.reported_at = brokers, lag, time.time()
        if any(state == "UP" for state in brokers.values()):
            self.status, self.error = "up", None
        elif brokers:
            self.status = "down"
            self.error = "no broker connection is up: " + ", ".join(
                f"{name} {state}" for name, state in sorted(brokers.items())
            )

    def lost(self, error: str) -> None:
        """The client reported every broker down (or a fatal error)."""
        self.status, self.error = "down", error[:300]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "brokers": dict(sorted(self.brokers.items())),
            "report_age_s": (
                round(time.time() - self.reported_at, 1) if self.reported_at is not None else None
            ),
        }
