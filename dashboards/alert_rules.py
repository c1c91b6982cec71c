"""Grafana-managed alert rules for helpfulness and safety, in the provisioning API's shape.

Vigil does the statistics (sequential tests with a false-alarm budget, per segment); these
rules let Grafana route what Vigil decided through the team's own contact points and
silences. Each rule counts the (rule, segment) pairs whose latest Vigil alert state is
``firing`` among the rules of some metrics, and fires while that count is above zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.build import DATASOURCE_TYPE


@dataclass(frozen=True)
class GrafanaRule:
    uid: str
    title: str
    metrics: tuple[str, ...]
    """Vigil rule metrics (`monitor/alerts/default_rules.yaml`) this rule watches."""
    summary: str


RULES: tuple[GrafanaRule, ...] = (
    GrafanaRule(
        "vigil-helpfulness",
        "Vigil: helpfulness dropped",
        ("helpfulness", "negative_feedback_rate"),
        "A Vigil helpfulness or negative-feedback alert is firing for some model version.",
    ),
    GrafanaRule(
        "vigil-safety",
        "Vigil: safety incidents up",
        ("incident_rate", "toxicity_score"),
        "A Vigil safety alert (PII, jailbreak, toxicity) is firing for some segment.",
    ),
)

#: Grafana's server-side expressions datasource.
_EXPR = "__expr__"


def firing_sql(database: str, metrics: tuple[str, ...]) -> str:
    """How many (rule, segment) pairs of these metrics are firing now in Vigil."""
    listed = ", ".join(f"'{m}'" for m in metrics)  # constants above, not user input
    return (
        "SELECT count() AS firing FROM (SELECT rule, segment_key, argMax(state, ts) AS state "
        f"FROM {database}.alerts FINAL WHERE metric IN ({listed}) GROUP BY rule, segment_key) "
        "WHERE state = 'firing'"
    )


def rule_body(
    rule: GrafanaRule, folder_uid: str, datasource_uid: str, database: str
) -> dict[str, Any]:
    """The rule as ``POST /api/v1/provisioning/alert-rules`` takes it."""
    query = {
        "refId": "A",
        "datasource": {"type": DATASOURCE_TYPE, "uid": datasource_uid},
        "editorType": "sql",
        "queryType": "table",
        "format": 1,
        "rawSql": firing_sql(database, rule.metrics),
    }
    return {
        "uid": rule.uid,
        "title": rule.title,
        "folderUID": folder_uid,
        "ruleGroup": "vigil",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "datasourceUid": datasource_uid,
                "relativeTimeRange": {"from": 600, "to": 0},
                "model": query,
            },
            {
                "refId": "B",
                "datasourceUid": _EXPR,
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"},
            },
            {
                "refId": "C",
                "datasourceUid": _EXPR,
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        # No rows means Vigil has stored no alert yet: nothing is firing.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "1m",
        "labels": {"source": "vigil"},
        "annotations": {
            "summary": rule.summary,
            "description": "See `vigil alerts` for the segment, the evidence and the examples.",
        },
    }
