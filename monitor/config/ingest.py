"""Where events come from and where results go: Kafka and the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from monitor.config.base import Positive, Section


class KafkaSettings(Section):
    """Where the broker is and how the worker consumes it."""

    bootstrap_servers: str = ""
    """Kafka bootstrap servers (host:port,...). Empty: `vigil up` starts the embedded dev broker."""
    events_topic: str = "vigil.events"
    """Topic with one JSON event per message."""
    input_topics: dict[str, Literal["vigil", "otlp_proto", "otlp_json", "openai"]] = Field(
        default_factory=dict
    )
    """More topics the worker ingests, each with its input format: ``otlp_proto`` /
    ``otlp_json`` (OTLP trace exports, as the OpenTelemetry Collector's Kafka exporter
    writes them to ``otlp_spans``), ``openai`` (logged chat-completions request/response
    pairs) or ``vigil``. ``events_topic`` is always read too, in the ``vigil`` format."""
    feedback_topic: str = "vigil.feedback"
    """Topic with late user feedback, joined to events by event_id."""
    dlq_topic: str = "vigil.events.dlq"
    """Dead-letter topic: original bytes plus a reason header for messages that do not parse."""
    dlq_max_bytes: Annotated[int, Field(ge=1024, le=900_000)] = 262_144
    """Largest payload of a dead letter on the DLQ topic. A longer message goes there as
    its first this many bytes, with headers ``vigil.truncated: 1``,
    ``vigil.original_bytes`` and ``vigil.sha256`` (of the whole message); the
    ``dead_letters`` table keeps every byte. At most 900,000: the DLQ producer refuses
    records over 1,000,000 bytes, and brokers commonly cap messages near 1 MiB
    (Kafka's ``message.max.bytes``/``max.message.bytes``, default 1,048,588)."""
    group_id: str = "vigil"
    """Consumer group of the events topic (late feedback is read in `<group_id>.feedback`);
    run more workers in the same group to scale out with partitions."""
    partitions: Annotated[int, Field(ge=1)] = 1
    """Partitions to create for Vigil's topics when they do not exist yet."""
    batch_max: Annotated[int, Field(ge=1)] = 10_000
    """Ingest batch size: take up to this many events... (each batch is one insert per
    table, i.e. one ClickHouse part, and fewer parts mean fewer merges: on 2 cores,
    10,000-event batches stored ~1.3x faster than 5,000 and ~1.6x faster than 2,000 in
    `bench/ingest.py`, at ~40 MB of memory per batch in flight)"""
    batch_within_s: Positive = 0.5
    """...or whatever arrived within this many seconds, whichever comes first."""
    session_timeout_s: Positive = 10.0
    """Consumer-group session timeout (the dev broker joins in about half of it)."""
    connect_retries: Annotated[int, Field(ge=0)] = 8
    """How often to retry an unreachable broker (exponential backoff) before giving up."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Kafka security protocol."""
    sasl_mechanism: str = ""
    """SASL mechanism (PLAIN, SCRAM-SHA-256...) when a SASL protocol is used."""
    sasl_username: str = ""
    """SASL user name."""
    sasl_password: SecretStr = SecretStr("")
    """SASL password (masked in `vigil config show`)."""


class StoreSettings(Section):
    """Where results live: a ClickHouse server, or chDB embedded in the process."""

    backend: Literal["auto", "embedded", "server"] = "auto"
    """auto: server when `url` is set, else embedded chDB under `data_dir`."""
    data_dir: Path = Path(".vigil/data")
    """Directory of the embedded store (and its lock file naming the daemon's endpoint)."""
    url: str = ""
    """ClickHouse HTTP URL for the server backend, e.g. http://clickhouse:8123."""
    username: str = "default"
    """ClickHouse user."""
    password: SecretStr = SecretStr("")
    """ClickHouse password (masked in `vigil config show`)."""
    database: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = "vigil"
    """Database holding Vigil's tables (created if missing); an SQL identifier (letters,
    digits, underscores), since it is written into every query's text."""
    ttl_days: Annotated[int, Field(ge=1)] = 90
    """Retention: rows older than this many days (by event time) are dropped by ClickHouse."""
    http_host: str = "127.0.0.1"
    """Interface of the ClickHouse-compatible HTTP endpoint `vigil up` serves over chDB."""
    http_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Port of that endpoint; 0 picks a free one (written to the lock file)."""
    http_token: SecretStr = SecretStr("")
    """Credential of that endpoint (HTTP basic password, X-ClickHouse-Key or
    ``Authorization: Bearer``); required when ``http_host`` is not loopback. Empty: falls
    back to ``password``; both empty: open, on loopback only."""
    http_max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    """Largest request body the endpoint reads, before and after decompression (413)."""
    http_max_query_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    """Largest statement text (URL ``query`` plus a body that is SQL) it accepts (413)."""
    http_max_execution_s: Annotated[int, Field(ge=1)] = 30
    """``max_execution_time`` of every read through the endpoint (clients cannot raise it)."""
    http_allowed_table_functions: tuple[str, ...] = (
        "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries",
        "primes", "values", "format", "null", "view",
    )  # fmt: skip
    """Table functions readers may call; every other (file, url, s3, remote...) is refused."""
    http_allowed_origins: tuple[str, ...] = ()
    """Browser origins (``Origin`` header) the endpoint serves; requests from any other
    origin are refused (403). Requests without an Origin header (curl, Grafana's backend,
    clickhouse-connect) are not affected."""
    insert_retries: Annotated[int, Field(ge=0)] = 5
    """`vigil replay` and the one-shot commands: how often a failed insert is retried
    (with backoff) before the run fails. The live worker never gives up: it stops
    fetching, keeps its offsets uncommitted, says so on ``/readyz`` and in the logs, and
    retries (backoff capped at ``retry_max_delay_s``) until the store takes the batch."""
    connect_retries: Annotated[int, Field(ge=0)] = 8
    """Server backend: how often `vigil worker` retries a ClickHouse that does not answer
    at start-up (backoff from 0.5 s, at most 10 s: about 45 s in all) before it exits."""
    retry_max_delay_s: Annotated[float, Field(gt=0)] = 30.0
    """Longest wait between two attempts of a failed insert (the backoff doubles from
    0.1 s up to this)."""


_DAY_S = 86_400.0


class EventSettings(Section):
    """Which event times are accepted (the rule: `monitor.pipeline.event_time`).

    An event is accepted when its ``ts`` is at most ``max_past_s`` behind and
    ``max_ahead_s`` ahead of the stream's progress and, live, at most ``max_future_s``
    ahead of the worker's clock. Any other is dead-lettered (reason ``ts_out_of_range``,
    a detail naming the bound), so that one stray timestamp never moves the watermark,
    the event-time jobs or a sampling budget. ``.inf`` (YAML) turns a bound off."""

    max_future_s: Positive = 300.0
    """Live worker only: an event stamped more than this many seconds ahead of the
    worker's clock is out of range (room for clock skew between producers and the
    worker). `vigil replay` has no clock to compare with: see ``max_ahead_s``."""
    max_ahead_s: Positive = 7 * _DAY_S
    """An event more than this many seconds ahead of the stream's progress (the latest
    event time accepted so far, or the median event time of its batch when that is
    later: a whole stream moving on is followed, one event is not) is out of range, in
    replay and live. Larger than the longest quiet gap in your traffic (a weekend)."""
    max_past_s: Positive = 7 * _DAY_S
    """An event more than this many seconds behind the stream's progress (the latest
    event time accepted so far, or the median event time of its batch when that is
    earlier) is out of range, in replay and live: late events within it are accepted.
    Relative to the stream, not the clock: a worker reading an old backlog accepts it.
    Raise it when one worker reads partitions whose event times lie further apart."""
    duplicate_window: Annotated[int, Field(ge=0)] = 200_000
    """How many recent event ids each process remembers to apply the duplicate rule
    (`monitor.pipeline.duplicates`: the first message with an id wins; a later one with
    the same bytes is skipped, one with other bytes is dead-lettered as
    ``duplicate_id``). About 100 bytes of memory per id; 0 turns the check off (the
    store's key then keeps the last write)."""
