"""What the judge reads back: verdicts stored earlier, for its persistent verdict cache."""

from __future__ import annotations

from typing import Any

from monitor.store.base import Store


def stored_verdicts(store: Store, keys: list[str]) -> list[dict[str, Any]]:
    """One fresh (not re-issued) ``judgments`` row per cache key found among ``keys``.

    Rows carry the key and what a verdict needs to be re-issued: ``cache_key``,
    ``judge_model``, ``cascade``, ``scores``, ``reasons``, ``pair_winner``, ``pair_orders``,
    ``pair_reasons``. Raises `StoreError` when the store fails.
    """
    if not keys:
        return []
    # cached = 0: a re-issued row copies a verdict, so the original is the one to return.
    sql = (
        "SELECT cache_key, judge_model, cascade, scores, reasons, pair_winner, pair_orders, "
        f"pair_reasons FROM {store.database}.judgments "
        "WHERE has({keys:Array(String)}, cache_key) AND cached = 0 LIMIT 1 BY cache_key"
    )
    return store.query(sql, {"keys": keys})
