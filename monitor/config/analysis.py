"""What runs over time: the drift job and the alert rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, model_validator

from monitor.config.base import Positive, Rate, Section
from monitor.config.masking import check_webhook_url


class DriftSettings(Section):
    """Reference-vs-window tests on prompt embeddings."""

    window_minutes: Positive = 30.0
    """Current window length in event time."""
    every_minutes: Positive = 5.0
    """How often (event time) the drift job runs."""
    reference_minutes: Positive = 240.0
    """Rolling reference length when no baseline is pinned. The windows of reports that
    flagged drift are left out of it, so an incident never becomes its own reference."""
    min_window_events: Annotated[int, Field(ge=10)] = 100
    """Skip a test whose window has fewer embedded events than this."""
    min_reference_events: Annotated[int, Field(ge=10)] = 300
    """A reference (rolling or pinned) with fewer prompt embeddings than this is not tested
    against; its report says ``not_enough_reference``. Topic clusters fitted on a small
    reference fit its noise (12 clusters on 150 rows), which any window then "shifts"."""
    min_reference_minutes: Annotated[float, Field(ge=0)] = 30.0
    """A reference's embeddings must also span this much event time (its first one to its
    end), else ``not_enough_reference``: at the start of a stream a rolling reference holds
    a few minutes, less of the traffic's variety than the window it judges. At most
    ``reference_minutes``."""
    max_reference: Annotated[int, Field(ge=100)] = 5000
    """Reference subsample size."""
    max_window: Annotated[int, Field(ge=100)] = 2000
    """Window subsample size."""
    permutations: Annotated[int, Field(ge=10)] = 200
    """Permutations for the MMD p-value."""
    clusters: Annotated[int, Field(ge=2)] = 12
    """k for the k-means topic clusters on the reference."""
    alpha: Rate = 0.01
    """Family-wise significance level, spent across repeated tests."""
    enabled: bool = True
    """Run the drift job (an event-time timer) at all."""
    rff_features: Annotated[int, Field(ge=64)] = 1024
    """Random Fourier features approximating the Gaussian kernel of the MMD test."""
    new_topic_quantile: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.99
    """Held-out reference quantile of the distance to the nearest centroid; beyond: new topic."""
    min_mmd: Annotated[float, Field(ge=0)] = 0.05
    """Minimum effect for the MMD test: MMD beyond its permutation-null mean."""
    min_psi: Annotated[float, Field(ge=0)] = 0.1
    """Minimum effect for the cluster-share test: population stability index."""
    min_new_topic: Rate = 0.05
    """Minimum effect for the new-topic test: window rate minus the reference's base rate."""
    top_clusters: Annotated[int, Field(ge=1)] = 3
    """Most shifted clusters described in each report (shares, examples, judge change)."""
    examples_per_cluster: Annotated[int, Field(ge=0)] = 3
    """Representative prompts stored per described cluster (cut to 200 characters)."""
    blas_threads: Annotated[int, Field(ge=0)] = 1
    """BLAS threads while the drift job computes; 1 keeps it from fighting the scorers for
    shared cores (multi-threaded BLAS on busy cores is many times slower); 0: library default."""

    @model_validator(mode="after")
    def _check_reference_span(self) -> DriftSettings:
        # A rolling reference never spans more than reference_minutes: it would never test.
        if self.min_reference_minutes > self.reference_minutes:
            raise ValueError(
                f"drift.min_reference_minutes ({self.min_reference_minutes:g}) exceeds"
                f" drift.reference_minutes ({self.reference_minutes:g})"
            )
        return self


class AlertSettings(Section):
    """Alert rules and where notifications go."""

    rules_file: Path | None = None
    """YAML file of alert rules; None: the built-in defaults."""
    every_minutes: Positive = 1.0
    """How often (event time) rules are evaluated."""
    webhook_url: SecretStr = SecretStr("")
    """Generic JSON webhook for notifications (empty: none). A secret: such URLs often
    carry their token in the path or query (masked in `vigil config show`). Must be https
    (plain http only to a loopback host: localhost, 127.0.0.1, ::1)."""
    slack_webhook_url: SecretStr = SecretStr("")
    """Slack-compatible incoming webhook (masked in `vigil config show`); https, or http
    to a loopback host, like webhook_url."""
    notify_stdout: bool = True
    """Print notifications to stdout (the demo does)."""
    enabled: bool = True
    """Run the alert evaluator (an event-time timer) at all."""
    notify_retries: Annotated[int, Field(ge=0)] = 3
    """Retries of a failed webhook delivery (5xx, 429, network), with exponential backoff."""
    notify_backoff_s: Annotated[float, Field(ge=0)] = 0.5
    """First retry delay in seconds; doubles on each retry."""
    notify_timeout_s: Positive = 5.0
    """Timeout of one webhook call."""
    notify_retry_every_s: Positive = 30.0
    """A notice some channel refused after its retries is tried again on that channel
    after this many seconds (wall clock), until ``notify_give_up_minutes``."""
    notify_give_up_minutes: Positive = 60.0
    """How long (wall clock, in this process) a notice is retried before it is stored as
    given up and logged as an error."""
    notify_drain_s: Annotated[float, Field(ge=0)] = 10.0
    """At shutdown and at the end of a replay, how long to wait for queued notices. What is
    left stays queued in table ``alerts`` and the next worker or replay sends it."""

    @model_validator(mode="after")
    def _check_webhooks(self) -> AlertSettings:
        # The message names the field; the URL in it is shown with credentials masked.
        for field in ("webhook_url", "slack_webhook_url"):
            value: SecretStr = getattr(self, field)
            check_webhook_url(value.get_secret_value().strip(), f"alerts.{field}")
        return self
