"""Operations: what the worker's /healthz, /readyz and /metrics answer.

- `OpsEndpoints`: the three answers for one pipeline (`streams.ops_web` serves them).
- `BrokerState`: the events consumer's view of the broker, written by the Kafka wiring.
- `readiness`: ready or not, and why; `PipelineMetrics`: the Prometheus registry.

A layer above the pipeline and alerts (it reads both), below nothing but `replay`.
"""

from __future__ import annotations

from monitor.ops.broker import BrokerState
from monitor.ops.endpoints import METRICS_CONTENT_TYPE, OpsEndpoints
from monitor.ops.metrics import PipelineMetrics
from monitor.ops.readiness import readiness

__all__ = ["METRICS_CONTENT_TYPE", "BrokerState", "OpsEndpoints", "PipelineMetrics", "readiness"]
