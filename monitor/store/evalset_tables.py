"""The eval-set library's tables (`monitor.evalset`): captured failures, exported items,
human labels, judge-human agreement and regression-gate runs."""

from __future__ import annotations

from monitor.store.table import Table

EVALSET_TABLES: list[Table] = [
    # One row per (event, capture rule): a production failure, linked to what showed it
    # (the score, the judge's reason, the alert). Re-captured rows replace the old ones.
    Table(
        "failures",
        """(
    event_id String,
    ts DateTime64(3, 'UTC'),
    route LowCardinality(String),
    model LowCardinality(String),
    model_version LowCardinality(String),
    reason LowCardinality(String),
    kind LowCardinality(String),
    detail String,
    score Nullable(Float64),
    alert_id String,
    topic LowCardinality(String),
    rule_version LowCardinality(String),
    captured_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(captured_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, reason)""",
    ),
    # The items of every exported eval-set version, for dashboards (the files are the
    # source of truth). Kept forever: an eval set outlives the traffic it came from.
    Table(
        "evalset_items",
        """(
    evalset LowCardinality(String),
    version LowCardinality(String),
    item_id String,
    split LowCardinality(String),
    reasons Array(LowCardinality(String)),
    topic LowCardinality(String),
    model_version LowCardinality(String),
    source_event_ids Array(String),
    first_seen DateTime64(3, 'UTC'),
    prompt String,
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (evalset, version, item_id)""",
        ttl_column=None,
    ),
    # Human labels from `vigil evalset review` (or imported): one row per item and
    # reviewer, the latest wins; an undo writes a row with deleted = 1.
    Table(
        "review_labels",
        """(
    evalset LowCardinality(String),
    item_id String,
    reviewer LowCardinality(String),
    version LowCardinality(String),
    verdict LowCardinality(String),
    scores Map(String, Float64),
    note String,
    reference String,
    deleted UInt8,
    labelled_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(labelled_at)
ORDER BY (evalset, item_id, reviewer)""",
        ttl_column=None,
    ),
    # Judge-human agreement per rubric dimension, as measured by `vigil evalset
    # agreement`; the helpfulness alert weighs the judge by the latest one.
    Table(
        "judge_agreement",
        """(
    evalset LowCardinality(String),
    version LowCardinality(String),
    judge_version LowCardinality(String),
    dimension LowCardinality(String),
    n UInt32,
    kappa Float64,
    kappa_kind LowCardinality(String),
    kappa_low Float64,
    kappa_high Float64,
    spearman Float64,
    measured_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(measured_at)
ORDER BY (evalset, judge_version, dimension, measured_at)""",
        ttl_column=None,
    ),
    # Every `vigil evalset run` (the regression gate): what was compared, how, and each
    # metric, so the trend across fine-tunes can be read back.
    Table(
        "eval_runs",
        """(
    run_id String,
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC'),
    evalset LowCardinality(String),
    version LowCardinality(String),
    candidate String,
    baseline String,
    judge String,
    rubric_version LowCardinality(String),
    config_hash String,
    metrics Map(String, Float64),
    passed UInt8,
    failed_checks Array(String),
    report_path String
) ENGINE = ReplacingMergeTree(finished_at)
ORDER BY (evalset, started_at, run_id)""",
        ttl_column=None,
    ),
]
