"""Readiness: may this worker take traffic now? What ``/readyz`` answers, and why not.

Ready when the store accepts writes, ingest is not held back waiting for it, and the
events consumer has a broker connection. Each failing check adds a short code to
``reasons`` (for alerts and dashboards) and its detail to the body.
"""

from __future__ import annotations

from typing import Any

from monitor.ops.broker import BrokerState
from monitor.pipeline.health import Health


def readiness(health: Health, broker: BrokerState) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body of ``/readyz``)."""
    reasons: list[str] = []
    if not health.store_ok:
        reasons.append("store_unreachable")
    if health.backpressured:
        reasons.append("backpressured")
    if broker.status == "connecting":
        reasons.append("broker_connecting")
    elif broker.status == "down":
        reasons.append("broker_unreachable")
    store = health.as_dict()
    store.pop("ready", None)  # the pipeline's own view (store only); ours is above
    ready = not reasons
    return ready, {"ready": ready, "reasons": reasons, "store": store, "broker": broker.as_dict()}
