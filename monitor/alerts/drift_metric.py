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

from monitor.alerts import metrics as am
from monitor.alerts.model import Outcome
from monitor.alerts.rules import Rule
from monitor.alerts.state import Verdict
from monitor.errors import StoreError
from monitor.store.base import Store
from monitor.times import iso, parse_optional_ts


def evaluate_drift(
    store: Store, rule: Rule, as_of: datetime
) -> dict[str, tuple[dict[str, str], Outcome]]:
    db = store.database
    per_version = "model_version" in rule.split_by
    max_age = timedelta(minutes=float(rule.param("max_age_minutes")))
    try:
        rows = store.query(
            f"SELECT model_version, ts, drifted, new_topic, reasons, psi, new_topic_rate, "
            f"new_topic_base_rate, n_window FROM {db}.drift_reports FINAL "
            "WHERE ts <= {as_of:DateTime64} AND ts > {oldest:DateTime64} AND "
            + ("model_version != ''" if per_version else "model_version = ''")
            + " ORDER BY ts",
            {"as_of": as_of, "oldest": as_of - max_age},
        )
    except StoreError as exc:
        if "drift_reports" in str(exc) and "exist" in str(exc).lower():
            return {}  # no drift job has run (or the table is missing in an old store)
        raise
    kinds = set(rule.param("kinds"))
    latest: dict[str, dict[str, Any]] = {}
    last_flag: dict[str, datetime] = {}
    for row in rows:
        key = am.segment_key({"model_version": str(row["model_version"])}) if per_version else ""
        latest[key] = row
        if _drift_flag(row, kinds):
            last_flag[key] = parse_optional_ts(row["ts"]) or as_of
    out: dict[str, tuple[dict[str, str], Outcome]] = {}
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
        query = (
            f"SELECT ts, model_version, reasons, top_clusters FROM {db}.drift_reports FINAL "
            f"WHERE model_version = '{row['model_version']}' AND (drifted = 1 OR new_topic = 1) "
            f"AND ts <= '{iso(as_of)}' ORDER BY ts DESC LIMIT 20"
        )
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
