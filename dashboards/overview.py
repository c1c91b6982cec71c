"""The overview dashboard: traffic, latency, judge and safety scores, drift, alerts, sampling.

Every count deduplicates (``FINAL`` or ``uniqExact(event_id)``): rows redelivered into the
ReplacingMergeTrees must not count twice before they merge.
"""

from __future__ import annotations

from dashboards.panels import DashboardSpec, PanelSpec

_TS = "$__timeInterval(ts) AS time"

PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "traffic",
        "Traffic by model version",
        "timeseries",
        "SELECT $__timeInterval(minute) AS time, model_version, sum(events) AS events "
        "FROM {db}.rollup_minute FINAL WHERE $__timeFilter(minute) "
        "GROUP BY time, model_version ORDER BY time",
        ("time", "model_version", "events"),
        "Events per interval, from the per-minute rollup.",
        "short",
    ),
    PanelSpec(
        "latency",
        "Latency p50 / p95 / p99",
        "timeseries",
        f"SELECT {_TS}, quantile(0.5)(latency_ms) AS p50, quantile(0.95)(latency_ms) AS p95, "
        "quantile(0.99)(latency_ms) AS p99 FROM {db}.checks FINAL "
        "WHERE $__timeFilter(ts) AND latency_ms IS NOT NULL GROUP BY time ORDER BY time",
        ("time", "p50", "p95", "p99"),
        "Request latency quantiles over all traffic.",
        "ms",
    ),
    PanelSpec(
        "judge_scores",
        "Judge scores per dimension, by model version",
        "timeseries",
        f"SELECT {_TS}, concat(model_version, ' ', name) AS series, avg(value) AS score "
        "FROM {db}.scores FINAL WHERE scorer = 'judge' AND $__timeFilter(ts) "
        "GROUP BY time, series ORDER BY time",
        ("time", "series", "score"),
        "Mean LLM-as-judge score (1-5) of the sampled events.",
    ),
    PanelSpec(
        "negative_feedback",
        "Negative feedback rate, by model version",
        "timeseries",
        "SELECT $__timeInterval(minute) AS time, model_version, "
        "sum(negative_feedback) / nullIf(sum(feedback), 0) AS rate "
        "FROM {db}.rollup_minute FINAL WHERE $__timeFilter(minute) "
        "GROUP BY time, model_version ORDER BY time",
        ("time", "model_version", "rate"),
        "Thumbs-down share of the rated events.",
        "percentunit",
    ),
    PanelSpec(
        "incidents",
        "Safety incidents by type",
        "barchart",
        f"SELECT {_TS}, risk_type, uniqExact(event_id) AS events FROM {{db}}.incidents "
        "WHERE $__timeFilter(ts) GROUP BY time, risk_type ORDER BY time",
        ("time", "risk_type", "events"),
        "Events with a PII, jailbreak or toxicity incident.",
        "short",
    ),
    PanelSpec(
        "toxicity",
        "Toxicity score p95, by model version",
        "timeseries",
        f"SELECT {_TS}, model_version, quantile(0.95)(value) AS p95 FROM {{db}}.scores FINAL "
        "WHERE scorer = 'toxicity' AND $__timeFilter(ts) GROUP BY time, model_version "
        "ORDER BY time",
        ("time", "model_version", "p95"),
        "The upper tail of the toxicity scores (0-1) of the scored responses.",
    ),
    PanelSpec(
        "drift",
        "Prompt drift (MMD effect) by model version",
        "timeseries",
        f"SELECT {_TS}, model_version, max(mmd_effect) AS mmd_effect "
        "FROM {db}.drift_reports FINAL WHERE $__timeFilter(ts) "
        "GROUP BY time, model_version ORDER BY time",
        ("time", "model_version", "mmd_effect"),
        "Size of the shift of the prompt embeddings against the reference.",
    ),
    PanelSpec(
        "shifted_topics",
        "Drift reports that found a shift, with the shifted topics",
        "table",
        "SELECT ts AS time, model_version, arrayStringConcat(reasons, ', ') AS reasons, "
        "new_topic_rate, new_topic_base_rate, top_clusters FROM {db}.drift_reports FINAL "
        "WHERE $__timeFilter(ts) AND drifted = 1 ORDER BY ts DESC LIMIT 50",
        (
            "time",
            "model_version",
            "reasons",
            "new_topic_rate",
            "new_topic_base_rate",
            "top_clusters",
        ),
        "top_clusters: the clusters whose share moved most, with terms and example prompts.",
    ),
    PanelSpec(
        "alerts",
        "Alert timeline",
        "table",
        "SELECT ts AS time, rule, severity, segment_key, state, message, command "
        "FROM {db}.alerts FINAL WHERE $__timeFilter(ts) ORDER BY ts DESC LIMIT 200",
        ("time", "rule", "severity", "segment_key", "state", "message", "command"),
        "Every alert state change; `command` lists the failing events behind it.",
        width=24,
    ),
    PanelSpec(
        "decisions",
        "Sampling decisions by scorer",
        "barchart",
        f"SELECT {_TS}, concat(scorer, ': ', decision) AS series, count() AS events "
        "FROM {db}.decisions FINAL WHERE $__timeFilter(ts) GROUP BY time, series ORDER BY time",
        ("time", "series", "events"),
        "What happened to each event per scorer: scored, sampled out, over budget, failed.",
        "short",
    ),
    PanelSpec(
        "judge_cost",
        "Judge cost and tokens",
        "timeseries",
        f"SELECT {_TS}, sum(cost) AS cost, sum(prompt_tokens + completion_tokens) AS tokens "
        "FROM {db}.judgments FINAL WHERE $__timeFilter(ts) AND cached = 0 "
        "GROUP BY time ORDER BY time",
        ("time", "cost", "tokens"),
        "Spend of the uncached judge calls (cost in the judge's configured currency).",
    ),
)

OVERVIEW = DashboardSpec(
    "vigil-overview",
    "Vigil: overview",
    "Live quality of the monitored LLM service: traffic, latency, judge and safety scores, "
    "drift, alerts and what was sampled.",
    PANELS,
    links=(("Failures drill-down", "vigil-failures"),),
)
