"""Results out: evaluation results sent to an OpenTelemetry collector (`monitor.export`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from monitor.config.base import Positive, Section


class ResultsExportSettings(Section):
    """Judge verdicts and toxicity scores as OpenTelemetry ``gen_ai.evaluation.result``
    events over OTLP/HTTP (protobuf). Off while ``otlp_endpoint`` is empty."""

    otlp_endpoint: str = ""
    """Full URL of the collector's OTLP/HTTP logs endpoint, e.g.
    ``http://otel-collector:4318/v1/logs``; empty: nothing is exported."""
    scorers: list[str] = Field(default_factory=lambda: ["judge", "toxicity"])
    """Scorers whose results are exported (their scores, the judge's reasons too)."""
    service_name: str = "vigil"
    """``service.name`` of the exported events' resource."""
    batch_max: Annotated[int, Field(ge=1, le=10_000)] = 512
    """Most events in one export request."""
    flush_interval_s: Positive = 1.0
    """How long a partial batch waits for more events before it is sent."""
    queue_max: Annotated[int, Field(ge=1)] = 20_000
    """Events waiting to be sent; more than that are dropped and counted: export never
    slows ingest or scoring down."""
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    """Tries per request (transport errors, HTTP 429/502/503/504 are retried with
    backoff); then its events are dropped and counted."""
    retry_max_delay_s: Positive = 30.0
    """Longest wait between two tries (the backoff doubles from 0.5 s up to this)."""
    timeout_s: Positive = 10.0
    """Timeout of one export request."""
    drain_timeout_s: Annotated[float, Field(ge=0)] = 10.0
    """At shutdown, how long queued events may still be sent before the rest is dropped."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (OTLP/HTTP), or empty")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.otlp_endpoint)
