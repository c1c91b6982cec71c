"""librdkafka's statistics and error callbacks -> `monitor.ops.BrokerState`.

The events consumer (`streams.consumer`) reports every ``ops.stats_interval_s`` a JSON
document of its internals (librdkafka's STATISTICS.md): per broker connection its state,
per partition ``consumer_lag`` (the newest offset minus the committed one; -1 while
unknown). Both callbacks run on the consumer's thread, inside ``consume``; they only
parse and rebind values of the state, never block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import KafkaError

from monitor.config import OpsSettings
from monitor.ops import BrokerState

log = logging.getLogger("vigil.ingest")

#: Errors after which the consumer has no way to the broker until it reconnects.
_LOST = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION})


def parse_stats(raw: str | bytes) -> tuple[dict[str, str], dict[tuple[str, int], int]] | None:
    """(state per broker connection, lag per assigned partition) of one statistics report;
    None when it does not parse."""
    try:
        data: Any = orjson.loads(raw)
        brokers = {str(name): str(b.get("state", "?")) for name, b in data["brokers"].items()}
        lag: dict[tuple[str, int], int] = {}
        for topic, t in data.get("topics", {}).items():
            for key, part in t.get("partitions", {}).items():
                partition, value = int(key), int(part.get("consumer_lag", -1))
                # -1 is librdkafka's internal "unassigned" partition; a fetch_state of
                # "none" is a partition this consumer does not own (metadata only).
                if partition < 0 or value < 0 or part.get("fetch_state") == "none":
                    continue
                lag[(str(topic), partition)] = value
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return brokers, lag


def stats_callbacks(state: BrokerState, ops: OpsSettings) -> dict[str, Any]:
    """The consumer options that keep ``state`` current (none when ops is off)."""
    if not ops.enabled:
        return {}

    def on_stats(raw: str) -> None:
        parsed = parse_stats(raw)
        if parsed is None:
            log.debug("consumer statistics did not parse")
            return
        state.report(*parsed)

    def on_error(error: KafkaError) -> None:
        # librdkafka logs these itself (our `logger`); here they only move the state.
        if error.code() in _LOST or error.fatal():
            state.lost(error.str())

    callbacks: dict[str, Callable[..., None] | int] = {
        "statistics.interval.ms": max(100, int(ops.stats_interval_s * 1000)),
        "stats_cb": on_stats,
        "error_cb": on_error,
    }
    return callbacks
