"""The drift rule: alerts from the drift job's reports (table ``drift_reports``).

The drift job (monitor.drift.job) already corrects for repeated testing (alpha spending per
day plus minimum effects), so a report's ``drifted`` / ``new_topic`` flags are the test;
this rule turns them into alert states. It looks at reports no older than
``params.max_age_minutes``; with ``split_by: [model_version]`` it reads the per-version
reports, otherwise the pooled one (model_version '').

A flagged alert says what changed: the report's group of prompts that grew the most (a
topic cluster, or the new-topic group) with its top terms, its share in the reference and
now, three example prompts and how the model answered them (refusal rate, judge means).
The page is the alert row and the notice; the examples are user text, so they go there
and never into an INFO log line.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from monitor.alerts.metrics import segment_key
from monitor.alerts.model import Outcome, Outcomes
from monitor.alerts.rules import Rule
from monitor.alerts.state import Verdict
from monitor.store.base import Store
from monitor.store.queries import alert_examples as qx
from monitor.store.queries import alerts as q
from monitor.store.queries import drift as qd
from monitor.times import parse_optional_ts

_EXAMPLES = 3
_EXAMPLE_CHARS = 200


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
        reasons = list(row.get("reasons") or [])
        when = parse_optional_ts(row["ts"]) or as_of
        clusters = _clusters(store, when, str(row["model_version"])) if flagged else []
        headline = _headline(clusters)
        message = (f"{describe_cluster(headline)}; " if headline else "") + (
            f"drift reasons: {', '.join(reasons) or 'none'}; new-topic share "
            f"{100 * float(row['new_topic_rate']):.1f}% vs "
            f"{100 * float(row['new_topic_base_rate']):.1f}%; PSI {float(row['psi']):.3f}; "
            f"window n={int(row['n_window'])}"
        )
        query = qx.drift_examples_query(store.database, row["model_version"], as_of)
        verdict = Verdict(flagged, last_flag.get(key), not flagged, when)
        value = float(row["new_topic_rate"])
        details: dict[str, Any] = {"reasons": reasons}
        if headline:
            details |= {"cluster": headline, "clusters": clusters}
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
                details,
            ),
        )
    return out


def _drift_flag(row: dict[str, Any], kinds: set[str]) -> bool:
    return bool(
        ("drift" in kinds and int(row["drifted"]))
        or ("new_topic" in kinds and int(row["new_topic"]))
    )


def _clusters(store: Store, ts: datetime, model_version: str) -> list[dict[str, Any]]:
    text = qd.report_clusters(store, ts, model_version)
    clusters = orjson.loads(text) if text else []
    return clusters if isinstance(clusters, list) else []


def _headline(clusters: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The group (a cluster, or the new-topic group) whose share grew the most, by its
    PSI term (q - p) ln(q / p): a big share that grew a little and a small one that grew
    many times over both count; the report's first cluster when none grew."""

    def moved(cluster: dict[str, Any]) -> float:
        p = max(float(cluster.get("ref_share") or 0.0), 1e-4)
        q = max(float(cluster.get("cur_share") or 0.0), 1e-4)
        return (q - p) * math.log(q / p) if q > p else -1.0

    return max(clusters, key=moved) if clusters else None


def _pct(value: Any) -> str:
    return "?" if value is None else f"{100 * float(value):.1f}%"


def describe_cluster(cluster: dict[str, Any]) -> str:
    """One cluster as a person reads it: what it is about, how much it grew, how the
    model answered it, and what its prompts look like."""
    label = "new topic" if cluster.get("label") == "new_topic" else str(cluster.get("label"))
    terms = ", ".join(cluster.get("terms") or []) or "no telling terms"
    parts = [
        f'{label} "{terms}": {_pct(cluster.get("ref_share"))} of prompts in the reference, '
        f"{_pct(cluster.get('cur_share'))} now (n={cluster.get('n_window', '?')})"
    ]
    refusal = cluster.get("refusal") or {}
    if refusal.get("window") is not None:
        parts.append(
            f"refused {_pct(refusal['window'])} (reference {_pct(refusal.get('reference'))})"
        )
    judged = [
        f"judge {name} {v['window']:.2f} (reference "
        + ("?" if v.get("reference") is None else f"{v['reference']:.2f}")
        + ")"
        for name, v in (cluster.get("judge") or {}).items()
        if v.get("window") is not None
    ]
    parts += judged
    examples = [str(e)[:_EXAMPLE_CHARS] for e in (cluster.get("examples") or [])[:_EXAMPLES]]
    if examples:
        parts.append("e.g. " + " | ".join(orjson.dumps(e).decode() for e in examples))
    return "; ".join(parts)
