"""The ``evalset_items`` table: every exported item of every version, for dashboards
(the version folders are the source of truth; this is their queryable copy)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from monitor.store.base import Store

ITEM_COLUMNS = (
    "evalset", "version", "item_id", "split", "reasons", "topic", "model_version",
    "source_event_ids", "first_seen", "prompt", "created_at",
)  # fmt: skip


def insert_items(store: Store, rows: Iterable[dict[str, Any]]) -> int:
    """Write item rows (keys: `ITEM_COLUMNS`) in one insert; returns how many."""
    batch = [{c: row[c] for c in ITEM_COLUMNS} for row in rows]
    if batch:
        store.insert("evalset_items", batch)
    return len(batch)


def stored_items(store: Store, evalset: str, version: str) -> list[dict[str, Any]]:
    """The stored rows of one version, by item id."""
    sql = (
        "SELECT item_id, split, reasons, topic, model_version, source_event_ids, first_seen, "
        f"prompt FROM {store.database}.evalset_items FINAL "
        "WHERE evalset = {name:String} AND version = {version:String} ORDER BY item_id"
    )
    return store.query(sql, {"name": evalset, "version": version})


def stored_versions(store: Store, evalsets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Items per (evalset, version) in the table, with when each was created."""
    where = "WHERE evalset IN {names:Array(String)}" if evalsets else ""
    sql = (
        "SELECT evalset, version, count() AS items, max(created_at) AS created_at "
        f"FROM {store.database}.evalset_items FINAL {where} "
        "GROUP BY evalset, version ORDER BY evalset, version"
    )
    return store.query(sql, {"names": list(evalsets or [])})
