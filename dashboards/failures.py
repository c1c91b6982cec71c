"""The failures drill-down: what failed, the examples, and the eval-set versions they became."""

from __future__ import annotations

from dashboards.panels import DashboardSpec, PanelSpec

PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "failures_by_reason",
        "Captured failures by reason",
        "barchart",
        "SELECT $__timeInterval(ts) AS time, reason, uniqExact(event_id) AS events "
        "FROM {db}.failures WHERE $__timeFilter(ts) GROUP BY time, reason ORDER BY time",
        ("time", "reason", "events"),
        "Production failures the capture rules kept (the eval sets' source).",
        "short",
    ),
    PanelSpec(
        "top_failures",
        "Failure examples",
        "table",
        "SELECT f.ts AS time, f.model_version AS model_version, f.reason AS reason, "
        "f.kind AS kind, f.score AS score, substring(e.prompt, 1, 200) AS prompt, "
        "substring(e.response, 1, 200) AS response, f.alert_id AS alert_id "
        "FROM {db}.failures AS f FINAL LEFT JOIN "
        "(SELECT event_id, prompt, response FROM {db}.events FINAL "
        "WHERE $__timeFilter(ts)) AS e ON e.event_id = f.event_id "
        "WHERE $__timeFilter(f.ts) ORDER BY f.ts DESC LIMIT 100",
        ("time", "model_version", "reason", "kind", "score", "prompt", "response", "alert_id"),
        "The newest captured failures with their prompt and response (first 200 characters).",
        width=24,
        height=10,
    ),
    PanelSpec(
        "evalset_versions",
        "Eval-set versions",
        "table",
        "SELECT evalset, version, count() AS items, countIf(split = 'test') AS test_items, "
        "max(created_at) AS created FROM {db}.evalset_items FINAL "
        "GROUP BY evalset, version ORDER BY created DESC LIMIT 50",
        ("evalset", "version", "items", "test_items", "created"),
        "Every exported version; `vigil evalset show NAME@VERSION` lists its items.",
    ),
    PanelSpec(
        "dead_letters",
        "Dead letters by reason",
        "barchart",
        "SELECT $__timeInterval(received_at) AS time, reason, count() AS messages "
        "FROM {db}.dead_letters FINAL WHERE $__timeFilter(received_at) "
        "GROUP BY time, reason ORDER BY time",
        ("time", "reason", "messages"),
        "Messages that did not parse, by reason (bytes kept in the DLQ topic and table).",
        "short",
    ),
)

FAILURES = DashboardSpec(
    "vigil-failures",
    "Vigil: failures",
    "The failures behind the alerts, their examples, and the eval-set versions made of them.",
    PANELS,
    links=(("Overview", "vigil-overview"),),
)
