"""Every table Vigil writes: its columns, engine, key and tuning, as ClickHouse DDL.

Idempotency: each table is a ReplacingMergeTree whose ORDER BY is the row's natural key
(event_id plus scorer and version where it applies), so a redelivered batch writes rows
that collapse into the ones already there. Readers that need exact counts use ``FINAL``.
Retention: a TTL on event time, ``ttl_days`` from the settings; the raw text columns
(`Table.raw_text`) may expire sooner, ``privacy.raw_text_days``, by a column TTL that
resets them to their default ('' or an empty map).

Adding a table: append a `Table` to `TABLES`; `migrate` creates what is missing.
"""

from __future__ import annotations

from monitor.store.evalset_tables import EVALSET_TABLES
from monitor.store.table import Table

#: For the tables every batch writes (events, checks, feedback, and decisions, one row
#: per event and scorer): how many parts a background merge takes at once (ClickHouse's
#: default base is 5). Each batch writes one part per table, and merges rewrite those
#: parts level by level; a larger base means fewer levels, so each row is rewritten fewer
#: times. Measured on bench/ingest.py's worker: merge CPU 3.5-4.3 -> 2.0-2.3 us per event.
#: The cost, a few more parts alive at once, is small next to the thousands ClickHouse
#: tolerates per partition.
_FEWER_MERGES = (("merge_selector_base", "20"),)

#: The monitored free text of ``events`` (`Table.raw_text`): what ``privacy.raw_text_days``
#: empties early. The rest of a row (ids, segment, tokens, latency) lives to ``ttl_days``.
_EVENT_TEXT = ("prompt", "request", "response", "shadow_response", "metadata")

TABLES: list[Table] = [
    # The two tables written for every event use plain String where the others use
    # LowCardinality: dictionary-encoding each value at insert costs a fifth to a quarter
    # of a row's insert (measured, CPU per event: events 7.3 -> 6.3 us, checks 4.8 ->
    # 3.5 us), and the hot path's throughput is bounded by inserts. Reads go through
    # rollups and narrow time windows, where a plain String column costs little more.
    Table(
        "events",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    app String,
    route String,
    model String,
    model_version String,
    prompt String,
    request String,
    response String,
    finish_reason String,
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
        tuning=_FEWER_MERGES,
        raw_text=_EVENT_TEXT,
    ),
    Table(
        # Heuristic checks, one wide row per event: cheap to write at stream rate.
        # empty / refusal / json_ok are NULL when the event has no captured text
        # (metadata content_captured = 'false', e.g. an OTLP span without content):
        # "not applicable", where 0 would claim the check ran and passed.
        "checks",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route String,
    model String,
    model_version String,
    checks_version String,
    latency_ms Nullable(Float64),
    prompt_tokens Nullable(UInt32),
    completion_tokens Nullable(UInt32),
    response_chars UInt32,
    empty Nullable(UInt8),
    truncated UInt8,
    refusal Nullable(UInt8),
    latency_slow UInt8,
    too_long UInt8,
    json_required UInt8,
    json_ok Nullable(UInt8),
    json_error String,
    pii_kinds Array(String),
    jailbreak_kinds Array(String),
    failed Array(String)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, checks_version)""",
        tuning=_FEWER_MERGES,
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
        tuning=_FEWER_MERGES,
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
        tuning=_FEWER_MERGES,
        raw_text=("comment",),
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
        raw_text=("raw_b64",),
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
        # LLM-judge verdicts, one row per (event, judge identity): per-dimension scores and
        # reasons, the pairwise outcome, judge model, rubric version, prompt template hash,
        # tokens, cost and latency. cache_key (content + judge identity) makes this table the
        # persistent verdict cache; rows with cached=1 re-issue a verdict at no cost.
        "judgments",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    judge_version LowCardinality(String),
    cache_key String,
    judge_model LowCardinality(String),
    rubric LowCardinality(String),
    rubric_version LowCardinality(String),
    template_hash LowCardinality(String),
    mode LowCardinality(String),
    cascade LowCardinality(String),
    scores Map(String, Float64),
    reasons Map(String, String),
    overall Float64,
    pair_winner LowCardinality(String),
    pair_orders Array(String),
    pair_reasons Array(String),
    shadow_model String,
    cached UInt8,
    calls UInt16,
    repaired UInt8,
    prompt_tokens UInt32,
    completion_tokens UInt32,
    cost Float64,
    latency_ms Float64,
    created_at DateTime64(3, 'UTC'),
    INDEX idx_cache_key cache_key TYPE bloom_filter GRANULARITY 4
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, judge_version)""",
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
    Table(
        # Drift reports (monitor/drift.py): one row per drift-job firing and scope.
        #   ts                 event time the report describes: the window end (as_of)
        #   model_version      '' = all versions pooled; a version name = only its events
        #                      (written when the window mixes versions, or a baseline is
        #                      pinned for that version)
        #   window_start       window is [window_start, ts)
        #   reference_kind     'pinned' (vigil baseline pin) or 'rolling' (the span before
        #                      the window); reference_start/end bound it, reference_id
        #                      names its exact contents (cache key, seeds)
        #   n_reference/n_window  embeddings used (after subsampling)
        #   drifted            1 when any test passed its alpha-spent level AND its minimum
        #                      effect; reasons says which: 'mmd', 'cluster_shift', 'new_topic'
        #   new_topic          1 when the new-topic test flagged (also in reasons)
        #   alpha_test         the per-test level after spending drift.alpha over a day
        #   mmd2, mmd_effect, mmd_p_value (gamma tail of the permutation null), mmd_p_perm
        #   centroid_cosine    1 - cos(mean reference, mean window)
        #   psi, chi2, chi2_p_value, max_share_ratio   cluster-share shift (k = clusters)
        #   new_topic_rate, new_topic_base_rate, new_topic_p_value
        #   top_clusters       JSON list: most shifted clusters (and the new-topic group,
        #                      cluster -1) with shares, example prompts, judge-score change
        # A rule "significant drift or a new topic, per version" reads the latest row per
        # model_version != '' (or = '' for all traffic): drifted = 1 OR new_topic = 1.
        "drift_reports",
        """(
    ts DateTime64(3, 'UTC'),
    model_version LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    reference_kind LowCardinality(String),
    reference_start DateTime64(3, 'UTC'),
    reference_end DateTime64(3, 'UTC'),
    reference_id String,
    embedder LowCardinality(String),
    n_reference UInt32,
    n_window UInt32,
    drifted UInt8,
    new_topic UInt8,
    reasons Array(LowCardinality(String)),
    alpha_test Float64,
    mmd2 Float64,
    mmd_effect Float64,
    mmd_p_value Float64,
    mmd_p_perm Float64,
    permutations UInt32,
    centroid_cosine Float64,
    clusters UInt16,
    psi Float64,
    chi2 Float64,
    chi2_p_value Float64,
    max_share_ratio Float64,
    new_topic_rate Float64,
    new_topic_base_rate Float64,
    new_topic_p_value Float64,
    top_clusters String,
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (model_version, ts)""",
    ),
    Table(
        # Per-minute dashboard rollups, recomputed from FINAL data by
        # monitor.store.rollups.refresh_rollups; the latest refresh of a minute wins.
        "rollup_minute",
        """(
    minute DateTime('UTC'),
    model LowCardinality(String),
    model_version LowCardinality(String),
    route LowCardinality(String),
    events UInt64,
    failed_events UInt64,
    failed_checks Map(String, UInt64),
    latency_p50_ms Nullable(Float64),
    latency_p95_ms Nullable(Float64),
    latency_avg_ms Nullable(Float64),
    prompt_tokens UInt64,
    completion_tokens UInt64,
    feedback UInt64,
    negative_feedback UInt64,
    positive_feedback UInt64,
    refreshed_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, model, model_version, route)""",
        ttl_column="minute",
    ),
    Table(
        # Alert state transitions (pending, firing, resolved, inactive), written by the
        # event-time alert evaluator. The latest row per (rule, segment_key) is the state a
        # restart resumes from. `notified`: 0 no notice due, 1 sent, 2 queued in the outbox,
        # 3 given up (`monitor.alerts.outbox`); a replay or restart never pages twice.
        "alerts",
        """(
    alert_id String,
    rule LowCardinality(String),
    metric LowCardinality(String),
    severity LowCardinality(String),
    segment Map(String, String),
    segment_key String,
    state LowCardinality(String),
    previous LowCardinality(String),
    reason LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    onset Nullable(DateTime64(3, 'UTC')),
    fired_at Nullable(DateTime64(3, 'UTC')),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    breaches UInt16,
    value Float64,
    baseline Float64,
    effect Float64,
    statistic Float64,
    threshold Float64,
    n UInt64,
    confidence Float64,
    message String,
    query String,
    command String,
    details String,
    notified UInt8,
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (rule, segment_key, ts, state)""",
    ),
]

#: The eval-set library's tables come after the monitoring ones.
TABLES += EVALSET_TABLES
