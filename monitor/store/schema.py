"""The ClickHouse schema: every table Vigil writes, created idempotently.

Idempotency: each table is a ReplacingMergeTree whose ORDER BY is the row's natural key
(event_id plus scorer and version where it applies), so a redelivered batch writes rows
that collapse into the ones already there. Readers that need exact counts use ``FINAL``.
Retention: a TTL on event time, ``ttl_days`` from the settings.

Adding a table: append a `Table` to `TABLES`; `migrate` creates what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """One table: its name and its CREATE statement body (columns and engine)."""

    name: str
    ddl: str
    ttl_column: str | None = "ts"

    def create_sql(self, database: str, ttl_days: int) -> str:
        ttl = (
            f"\nTTL toDateTime({self.ttl_column}) + INTERVAL {ttl_days} DAY"
            if self.ttl_column
            else ""
        )
        return f"CREATE TABLE IF NOT EXISTS {database}.{self.name} {self.ddl}{ttl}"


TABLES: list[Table] = [
    Table(
        "events",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    app LowCardinality(String),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    prompt String,
    request String,
    response String,
    finish_reason LowCardinality(String),
    latency_ms Nullable(Float64),
    prompt_tokens Nullable(UInt32),
    completion_tokens Nullable(UInt32),
    feedback_rating Nullable(Int8),
    shadow_response String,
    shadow_model String,
    metadata Map(String, String),
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id)""",
    ),
    Table(
        # Heuristic checks, one wide row per event: cheap to write at stream rate.
        "checks",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    checks_version LowCardinality(String),
    latency_ms Nullable(Float64),
    prompt_tokens Nullable(UInt32),
    completion_tokens Nullable(UInt32),
    response_chars UInt32,
    empty UInt8,
    truncated UInt8,
    refusal UInt8,
    latency_slow UInt8,
    too_long UInt8,
    json_required UInt8,
    json_ok UInt8,
    json_error String,
    pii_kinds Array(LowCardinality(String)),
    failed Array(LowCardinality(String))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, checks_version)""",
    ),
    Table(
        # Model-backed scores, one row per (event, scorer, version, metric).
        "scores",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    scorer LowCardinality(String),
    scorer_version LowCardinality(String),
    name LowCardinality(String),
    value Float64,
    label String,
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, scorer, scorer_version, name)""",
    ),
    Table(
        # Sampling decision per event and scorer. The version column ranks states so a
        # final state (scored, failed...) replaces `pending` whatever order rows arrive in.
        "decisions",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    scorer LowCardinality(String),
    decision LowCardinality(String),
    reason LowCardinality(String),
    rank UInt8,
    decided_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(rank)
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, scorer)""",
    ),
    Table(
        # Feedback: inline (from the event) or late (topic vigil.feedback); latest wins.
        "feedback",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    rating Int8,
    comment String,
    source LowCardinality(String),
    received_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id)""",
    ),
    Table(
        # Messages that did not parse: original bytes (base64) and the reason. The key is
        # where the message came from (topic/partition/offset or file:line), so a
        # redelivered bad message is kept once.
        "dead_letters",
        """(
    source String,
    position String,
    reason LowCardinality(String),
    detail String,
    raw_b64 String,
    received_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (source, position)""",
        ttl_column="received_at",
    ),
    Table(
        # Sentence embeddings of prompts (and optionally responses), for drift and similarity.
        "embeddings",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    kind LowCardinality(String),
    embedder LowCardinality(String),
    vector Array(Float32),
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, kind, embedder)""",
    ),
    Table(
        # Safety incidents grouped by risk type: toxicity (by category), pii (by kind),
        # jailbreak (pattern or similarity). One row per (event, risk type, category).
        "incidents",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    risk_type LowCardinality(String),
    category LowCardinality(String),
    score Float64,
    source LowCardinality(String),
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, risk_type, category)""",
    ),
    Table(
        # Key/value state that must survive restarts (pinned baselines, watermarks...).
        "state",
        """(
    key String,
    value String,
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (key)""",
        ttl_column=None,
    ),
]


def create_statements(database: str, ttl_days: int) -> list[str]:
    """Every statement `migrate` runs, in order."""
    return [f"CREATE DATABASE IF NOT EXISTS {database}"] + [
        table.create_sql(database, ttl_days) for table in TABLES
    ]
