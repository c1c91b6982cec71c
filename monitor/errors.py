"""The error tree. Every error Vigil raises on purpose derives from `VigilError`.

One subclass per boundary, so callers can catch what they can handle:

    VigilError
    ├── ConfigError      a setting is missing, malformed or inconsistent
    ├── EventError       an incoming message is not a valid event (carries a reason code)
    ├── StoreError       ClickHouse (server or embedded) refused or failed
    ├── BrokerError      Kafka could not be reached or refused a request
    ├── JudgeError       the LLM judge endpoint failed or gave no usable verdict
    │   ├── JudgeCallError       one call gave no verdict (carries a short code)
    │   │   └── JudgeOverBudget  the hourly cost budget is spent
    │   └── VerdictFormatError   the reply is not the JSON verdict asked for
    ├── ScorerError      a model-backed scorer (toxicity, embeddings) failed
    ├── NotifyError      a notification could not be delivered
    ├── EvalsetError     an eval set is missing, malformed, or would be overwritten
    └── GrafanaError     Grafana's HTTP API refused or could not be reached

Foreign exceptions are translated in one place per boundary, always with
``raise ... from exc``: pydantic in `monitor.config` and `monitor.events.schema`, chDB
and clickhouse-connect in the store backends, kafka-python / aiokafka / confluent-kafka
in `streams.admin.kafka_errors`, openai and httpx in `monitor.scorers.judge.client`,
grafana-client in `dashboards.push`.
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


class JudgeCallError(JudgeError):
    """A judge call gave no verdict; ``code`` is the short reason stored in the decision."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class JudgeOverBudget(JudgeCallError):
    """The hourly cost budget is spent; the job is recorded ``over_budget``, not failed."""

    def __init__(self) -> None:
        super().__init__("cost_budget", "hourly judge cost budget exhausted")


class VerdictFormatError(JudgeError):
    """The judge's reply is not the JSON verdict asked for (the message says why)."""


class ScorerError(VigilError):
    """A model-backed scorer (toxicity, embeddings) could not load or score."""


class NotifyError(VigilError):
    """A notification could not be delivered. ``retryable``: worth trying again."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class EvalsetError(VigilError):
    """An eval set (or a file given to check one against) is missing or malformed, or an
    export would overwrite an existing version."""


class GrafanaError(VigilError):
    """Grafana's HTTP API refused a request or could not be reached (`vigil dashboards push`)."""
