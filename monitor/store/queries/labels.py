"""The human review labels of an eval set (table ``review_labels``), as they stand now."""

from __future__ import annotations

from typing import Any

from monitor.store.base import Store


def current_labels(store: Store, evalset: str, reviewer: str | None = None) -> list[dict[str, Any]]:
    """The latest row per (item, reviewer) of ``evalset``, undone ones (deleted = 1) left
    out, optionally for one reviewer only, oldest first.

    Columns: item_id, reviewer, version, verdict, scores, note, reference, labelled_at.
    Labels are kept per eval-set name, not version: item ids are stable across versions,
    so a label given on v1 still holds for the same item in v2.
    """
    # FINAL collapses to the latest row first; only then is `deleted` filtered, so an undo
    # hides the label it replaced instead of letting an older row show through.
    where = "evalset = {evalset:String}"
    params: dict[str, Any] = {"evalset": evalset}
    if reviewer is not None:
        where += " AND reviewer = {reviewer:String}"
        params["reviewer"] = reviewer
    sql = (
        "SELECT item_id, reviewer, version, verdict, scores, note, reference, labelled_at "
        "FROM (SELECT item_id, reviewer, version, verdict, scores, note, reference, deleted, "
        f"labelled_at FROM {store.database}.review_labels FINAL WHERE {where}) "
        "WHERE deleted = 0 ORDER BY labelled_at, item_id, reviewer"
    )
    return store.query(sql, params)
