"""Vigil's library: everything that is not Kafka wiring, usable from a plain Python loop.

The public surface is listed once, here; everything else is internal and may move.

    from monitor import load_settings, open_store, replay_file
    settings = load_settings(overrides={"store": {"data_dir": "/tmp/vigil"}})
    summary = asyncio.run(replay_file(settings, Path("events.jsonl")))

The packages follow the data flow: `events` (the contract) -> `checks` (every event) ->
`pipeline` (sampling, scorer stages, rows, the one driver) -> `scorers` (judge,
toxicity, embeddings) -> `store` (ClickHouse); event-time jobs in `drift` and `alerts`,
delivery in `notifiers`; `assembly` builds a pipeline from settings.

Names load on first use (PEP 562), so importing one part does not load the others:
a worker that never embeds anything never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it
_EXPORTS = {
    # settings and errors
    "Settings": "monitor.config",
    "load_settings": "monitor.config",
    "VigilError": "monitor.errors",
    "ConfigError": "monitor.errors",
    "EventError": "monitor.errors",
    "StoreError": "monitor.errors",
    "BrokerError": "monitor.errors",
    "JudgeError": "monitor.errors",
    "ScorerError": "monitor.errors",
    "NotifyError": "monitor.errors",
    # the event contract
    "Event": "monitor.events",
    "FeedbackEvent": "monitor.events",
    "parse_event": "monitor.events",
    "parse_feedback": "monitor.events",
    # the pipeline and its drivers
    "Pipeline": "monitor.pipeline",
    "RawMessage": "monitor.pipeline",
    "DeadLetter": "monitor.pipeline",
    "Summary": "monitor.pipeline",
    "build_pipeline": "monitor.assembly",
    "replay_file": "monitor.replay",
    # pluggable parts
    "Scorer": "monitor.scorers",
    "Store": "monitor.store",
    "open_store": "monitor.store",
    "Notifier": "monitor.notifiers",
    # reading results
    "list_alerts": "monitor.alerts.listing",
}

__all__ = [
    "BrokerError",
    "ConfigError",
    "DeadLetter",
    "Event",
    "EventError",
    "FeedbackEvent",
    "JudgeError",
    "Notifier",
    "NotifyError",
    "Pipeline",
    "RawMessage",
    "Scorer",
    "ScorerError",
    "Settings",
    "Store",
    "StoreError",
    "Summary",
    "VigilError",
    "build_pipeline",
    "list_alerts",
    "load_settings",
    "open_store",
    "parse_event",
    "parse_feedback",
    "replay_file",
]

if TYPE_CHECKING:
    from monitor.alerts.listing import list_alerts
    from monitor.assembly import build_pipeline
    from monitor.config import Settings, load_settings
    from monitor.errors import (
        BrokerError,
        ConfigError,
        EventError,
        JudgeError,
        NotifyError,
        ScorerError,
        StoreError,
        VigilError,
    )
    from monitor.events import Event, FeedbackEvent, parse_event, parse_feedback
    from monitor.notifiers import Notifier
    from monitor.pipeline import DeadLetter, Pipeline, RawMessage, Summary
    from monitor.replay import replay_file
    from monitor.scorers import Scorer
    from monitor.store import Store, open_store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'monitor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
