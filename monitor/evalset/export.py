"""`export_evalset`: the next immutable version of an eval set, from captured failures.

The steps, each in its own module:

1. `collect`   failures in the window and their events' evidence -> one candidate per
               event, PII replaced by typed placeholders, stable id and split;
2. `dedupe`    exact duplicates (same id) and near duplicates (MinHash LSH) folded into
               the first seen;
3. `stratify`  at most ``per_reason`` / ``max_items`` items, round-robin over reasons
               and topics;
4. `manifest`  counts, hashes, source window, scorer versions, parent diff;
5. the version folder written atomically (`versions.write_version`), then the items
   copied into the ``evalset_items`` table.

A window with no failures writes nothing and raises `NothingToExport` (the CLI exits 1
with its message): an empty version would only shadow the last useful one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.config import Settings
from monitor.errors import EvalsetError
from monitor.evalset.collect import Progress, collect
from monitor.evalset.dedupe import dedupe_exact, dedupe_near
from monitor.evalset.items import EvalItem, content_hash, write_items
from monitor.evalset.manifest import build_manifest
from monitor.evalset.stratify import stratify
from monitor.evalset.versions import (
    ITEMS_JSONL,
    ITEMS_PARQUET,
    check_name,
    load,
    next_version,
    versions,
    write_manifest,
    write_version,
)
from monitor.store.base import Store
from monitor.store.queries.evalset_items import insert_items
from monitor.times import iso, now_iso

log = logging.getLogger("vigil.evalset.export")


class NothingToExport(EvalsetError):
    """The window holds no captured failures (no version was written)."""


def _window_text(
    since: datetime | None, until: datetime | None, reasons: Sequence[str] | None
) -> str:
    span = (f" from {iso(since)}" if since else "") + (f" until {iso(until)}" if until else "")
    which = f" with reason {', '.join(reasons)}" if reasons else ""
    return f"no captured failures{span or ' at all'}{which}"


def export_evalset(
    settings: Settings,
    store: Store,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    reasons: Sequence[str] | None = None,
    max_items: int | None = None,
    per_reason: int | None = None,
    out: Path | None = None,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Export the failures with ``since <= ts < until`` (and ``reasons``) as the next
    version of ``name`` under ``out`` (default ``evalset.dir``); returns the manifest,
    plus ``path`` (the version folder). Options left None come from ``evalset.export``.
    Raises `NothingToExport` for an empty window, `EvalsetError` for a bad name."""
    check_name(name)
    ex = settings.evalset.export
    root = Path(out) if out is not None else settings.evalset_dir
    max_items = max_items if max_items is not None else ex.max_items
    per_reason = per_reason if per_reason is not None else ex.per_reason
    fmt = fmt or ex.format
    if fmt not in ("jsonl", "parquet"):
        raise EvalsetError(f"format {fmt!r}: use jsonl or parquet")
    reasons = sorted(set(reasons)) if reasons else None

    collected = collect(store, since, until, reasons, ex.test_share, progress)
    if not collected.candidates:
        raise NothingToExport(
            _window_text(since, until, reasons) + ": nothing exported, no version written"
            " (`vigil failures` lists what was captured)"
        )
    kept, exact = dedupe_exact(collected.candidates)
    kept, near = dedupe_near(
        kept, ex.near_duplicate_jaccard, ex.minhash_permutations, ex.shingle_words, progress
    )
    selection = stratify(kept, per_reason, max_items)
    items = [c.item for c in selection.items]
    pii: Counter[str] = Counter()
    for candidate in selection.items:
        for tally in (candidate.pii, candidate.pii_comment):
            if tally:
                pii.update(tally)

    existing = versions(root, name)
    version = next_version(root, name)
    parent = None
    if existing:
        previous = load(root, f"{name}@{existing[-1]}")
        parent = (
            existing[-1],
            str(previous.manifest.get("content_hash") or content_hash(previous.items)),
            {item.id for item in previous.items},
        )
    created_at = now_iso()
    manifest = build_manifest(
        name=name,
        version=version,
        fmt=fmt,
        created_at=created_at,
        items=items,
        collected=collected,
        exact=exact,
        near=near,
        selection=selection,
        pii=pii,
        parent=parent,
        since=since,
        until=until,
        filters={
            "since": iso(since) if since else None,
            "until": iso(until) if until else None,
            "reasons": reasons,
            "max_items": max_items,
            "per_reason": per_reason,
            "test_share": ex.test_share,
        },
        dedupe_settings={
            "near_duplicate_jaccard": ex.near_duplicate_jaccard,
            "minhash_permutations": ex.minhash_permutations,
            "shingle_words": ex.shingle_words,
        },
    )
    if progress is not None:
        progress("writing", 0, 1)
    path = write_version(root, name, version, lambda tmp: _write(tmp, items, manifest, fmt))
    insert_items(store, _table_rows(name, version, items, created_at))
    if progress is not None:
        progress("writing", 1, 1)
    log.info(
        "eval set exported",
        extra={
            "evalset": name,
            "version": version,
            "items": len(items),
            "failures": collected.failures,
            "dropped": len(exact) + len(near),
            "path": str(path),
        },
    )
    return {**manifest, "path": str(path)}


def _write(folder: Path, items: list[EvalItem], manifest: dict[str, Any], fmt: str) -> None:
    if fmt == "parquet":
        from monitor.evalset.parquet import write_parquet

        write_parquet(folder / ITEMS_PARQUET, items)
    else:
        write_items(folder / ITEMS_JSONL, items)
    write_manifest(folder, manifest)


def _table_rows(
    name: str, version: str, items: list[EvalItem], created_at: str
) -> list[dict[str, Any]]:
    return [
        {
            "evalset": name,
            "version": version,
            "item_id": item.id,
            "split": item.split,
            "reasons": item.reasons,
            "topic": item.topic,
            "model_version": item.model_version,
            "source_event_ids": item.source_event_ids,
            "first_seen": item.first_seen,
            "prompt": item.prompt,
            "created_at": created_at,
        }
        for item in items
    ]
