"""The error tree. Every error Vigil raises on purpose derives from `VigilError`.

One subclass per boundary, so callers can catch what they can handle:

    VigilError
    ├── ConfigError      a setting is missing, malformed or inconsistent
    ├── EventError       an incoming message is not a valid event (carries a reason code)
    ├── StoreError       ClickHouse (server or embedded) refused or failed
    ├── BrokerError      Kafka could not be reached or refused a request
    ├── JudgeError       the LLM judge endpoint failed or gave no usable verdict
    └── ScorerError      a model-backed scorer (toxicity, embeddings) failed

Foreign exceptions (chdb, clickhouse-connect, kafka, openai, pydantic) are translated
at the boundary that calls them, always with ``raise ... from exc``.
"""

from __future__ import annotations


class VigilError(Exception):
    """Root of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """A setting is missing, malformed or inconsistent; start-up stops."""


class EventError(VigilError):
    """An incoming message is not a valid event.

    ``reason`` is a short machine-readable code (``invalid_json``, ``missing_field``...)
    stored with the original bytes in the dead-letter queue; ``detail`` is for humans.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StoreError(VigilError):
    """The store (ClickHouse server or embedded chDB) refused or failed a request."""


class BrokerError(VigilError):
    """Kafka could not be reached, or refused a request."""


class JudgeError(VigilError):
    """The judge endpoint failed, or its answer could not be turned into a verdict."""


class ScorerError(VigilError):
    """A model-backed scorer (toxicity, embeddings) could not load or score."""
