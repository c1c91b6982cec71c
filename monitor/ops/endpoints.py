"""What the worker's three operations endpoints answer, without any HTTP.

`streams.ops_web` serves these through Faust's web server; keeping the answers here keeps
the library free of the web framework and lets them be tested without a server.
"""

from __future__ import annotations

import time
from typing import Any

from monitor.ops.broker import BrokerState
from monitor.ops.metrics import PipelineMetrics
from monitor.ops.readiness import readiness
from monitor.pipeline import Pipeline

#: The content type of the Prometheus text format (0.0.4, what every scraper reads).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


class OpsEndpoints:
    """``/healthz``, ``/readyz`` and ``/metrics`` of one worker's pipeline."""

    def __init__(self, pipeline: Pipeline, broker: BrokerState | None = None) -> None:
        self.pipeline = pipeline
        self.broker = broker if broker is not None else BrokerState()
        self.metrics = PipelineMetrics(pipeline, self.broker)
        self._started = time.monotonic()

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """Alive: answering at all proves the event loop runs (the handler runs on it)."""
        return 200, {"status": "ok", "uptime_s": round(time.monotonic() - self._started, 1)}

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """200 when ready to take traffic, else 503; the body says why (`readiness`)."""
        ready, body = readiness(self.pipeline.health, self.broker)
        return (200 if ready else 503), body

    def metrics_text(self) -> bytes:
        return self.metrics.render()
