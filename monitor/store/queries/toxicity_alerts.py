"""The toxicity_score rule's SQL (`monitor.alerts.metrics`): per-minute counts of
toxicity-scored responses over a baseline limit, the baseline's score quantile, and the
scored events per minute (what share of the traffic the rule cannot see). Same shapes
as the other per-minute queries in `monitor.store.queries.alerts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.store.base import Store
from monitor.store.queries.alerts import (
    _RANGE,
    Limits,
    Result,
    _per_minute,
    _quantiles,
    _span,
    over_limit_minutes,
)

#: The headline score every toxicity backend writes (`monitor.scorers.toxicity.HEADLINE`).
_TOXICITY = "scorer = 'toxicity' AND name = 'toxicity'"


def toxicity_over_minutes(
    store: Store, dims: Sequence[str], lo: datetime, hi: datetime, limits: Limits
) -> Result:
    """Toxicity-scored responses (``n``) and those scoring above their segment's limit
    (``x``)."""
    return over_limit_minutes(store, dims, lo, hi, limits, "value", "scores", _TOXICITY)


def scored_minutes(
    store: Store, dims: Sequence[str], lo: datetime, hi: datetime, scorer: str
) -> Result:
    """Events with a final ``scored`` decision of ``scorer`` (``sn``): with the events per
    minute, what share of the traffic a scorer-based rule cannot see."""
    sql = _per_minute(
        dims,
        "uniqExact(event_id) AS sn",
        f"{store.database}.decisions FINAL",
        f"scorer = {{scorer:String}} AND decision = 'scored' AND {_RANGE}",
    )
    return store.query(sql, {**_span(lo, hi), "scorer": scorer})


def toxicity_quantiles(
    store: Store, dims: Sequence[str], quantile: float, lo: datetime, hi: datetime
) -> Result:
    """The toxicity-score quantile ``t`` (1.0: the highest score) and the scored responses
    ``n`` per segment over [lo, hi), as `latency_quantiles`."""
    return _quantiles(store, dims, quantile, "value", "scores", _TOXICITY, lo, hi)
