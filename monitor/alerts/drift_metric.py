"""The drift rule: alerts from the drift job's reports (table ``drift_reports``).

The drift job (monitor.drift.job) already corrects for repeated testing (alpha spending per
day plus minimum effects), so a report's ``drifted`` / ``new_topic`` flags are the test;
this rule turns them into alert states. It looks at reports no older than
``params.max_age_minutes``; with ``split_by: [model_version]`` it reads the per-version
reports, otherwise the pooled one (model_version '').
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor.alerts.metrics import segment_key
from monitor.alerts.model import Outcome, Outcomes
from monitor.alerts.rules import Rule
from monitor.alerts.state import Verdict
from monitor.store.base import Store
from monitor.store.queries import alert_examples as qx
from monitor.store.queries import alerts as q
from monitor.times import parse_optional_ts


def evaluate_drift(store: Store, rule: Rule, as_of: datetime) -> Outcomes:
    """The latest report's outcome per scope (one per version, or the pooled one)."""
    per_version = "model_version" in rule.split_by
    max_age = timedelta(minutes=float(rule.param("max_age_minutes")))
    rows = q.recent_drift_reports(store, as_of, as_of - max_age, per_version=per_version)
    kinds = set(rule.param("kinds"))
    latest: dict[str, dict[str, Any]] = {}
    last_flag: dict[str, datetime] = {}
    for row in rows:
        key = segment_key({"model_version": str(row["model_version"])}) if per_version else ""
        latest[key] = row
        if _drift_flag(row, kinds):
            last_flag[key] = parse_optional_ts(row["ts"]) or as_of
    out: Outcomes = {}
    for key, row in latest.items():
        flagged = _drift_flag(row, kinds)
        segment = {"model_version": str(row["model_version"])} if per_version else {}
        reasons = ", ".join(row.get("reasons") or []) or "none"
        message = (
            f"drift reasons: {reasons}; new-topic share {100 * float(row['new_topic_rate']):.1f}% "
            f"vs {100 * float(row['new_topic_base_rate']):.1f}%; PSI {float(row['psi']):.3f}; "
            f"window n={int(row['n_window'])}"
        )
        when = parse_optional_ts(row["ts"]) or as_of
        query = qx.drift_examples_query(store.database, row["model_version"], as_of)
        verdict = Verdict(flagged, last_flag.get(key), not flagged, when)
        value = float(row["new_topic_rate"])
        out[key] = (
            segment,
            Outcome(
                verdict,
                value,
                float(row["new_topic_base_rate"]),
                value - float(row["new_topic_base_rate"]),
                float(row["psi"]),
                0.0,
                int(row["n_window"]),
                1.0 - rule.alpha if flagged else 0.0,
                message,
                query,
                {"reasons": list(row.get("reasons") or [])},
            ),
        )
    return out


def _drift_flag(row: dict[str, Any], kinds: set[str]) -> bool:
    return bool(
        ("drift" in kinds and int(row["drifted"]))
        or ("new_topic" in kinds and int(row["new_topic"]))
    )
