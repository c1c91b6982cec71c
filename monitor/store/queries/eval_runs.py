"""Gate runs (table ``eval_runs``): one row per `vigil evalset run`, read back as a trend."""

from __future__ import annotations

from typing import Any

from monitor.store.base import Store

COLUMNS = (
    "run_id", "started_at", "finished_at", "evalset", "version", "candidate", "baseline",
    "judge", "rubric_version", "config_hash", "metrics", "passed", "failed_checks",
    "report_path",
)


def record_run(store: Store, run: dict[str, Any]) -> None:
    """Store one run (a dict with every column of ``eval_runs``)."""
    missing = [c for c in COLUMNS if c not in run]
    if missing:
        raise ValueError(f"eval_runs row lacks {', '.join(missing)}")
    store.insert("eval_runs", [{c: run[c] for c in COLUMNS}])


def list_runs(store: Store, evalset: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest ``limit`` runs (of ``evalset``, or of every eval set), oldest first."""
    where = "WHERE evalset = {evalset:String}" if evalset else ""
    sql = (
        "SELECT * FROM (SELECT run_id, toString(started_at) AS started_at, "
        "toString(finished_at) AS finished_at, evalset, version, candidate, baseline, judge, "
        "rubric_version, config_hash, metrics, passed, failed_checks, report_path "
        f"FROM {store.database}.eval_runs FINAL {where} "
        "ORDER BY started_at DESC, run_id DESC LIMIT {limit:UInt32}) "
        "ORDER BY started_at, run_id"
    )
    params: dict[str, Any] = {"limit": limit}
    if evalset:
        params["evalset"] = evalset
    return store.query(sql, params)
