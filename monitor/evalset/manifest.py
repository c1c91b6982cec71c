"""The manifest of an exported version: what is in it, where it came from, what was
folded away or replaced, and how it differs from the version before.

Keys (``manifest.json``, sorted when written):

- ``name``, ``version``, ``created_at``, ``vigil_version``, ``format``, ``items``,
  ``content_hash`` (`items.content_hash`: equal content, equal hash)
- ``parent``: the previous version, its hash and the ids ``added`` / ``removed``
- ``counts``: items by ``reason`` (every reason an item has), ``primary_reason`` (the one
  it was selected under), ``topic`` and ``split``
- ``source``: the window asked for (``since`` / ``until``) and the one actually covered
  (``first_event`` / ``last_event``), failures and events read
- ``scorers``: scorer versions, judge versions and rubric versions seen in the evidence
- ``filters``: the options the export ran with
- ``dedupe``: exact and near counts, the settings, and every ``dropped`` candidate with
  the id it was folded into and the estimated similarity
- ``pii``: placeholders written per kind in the exported text (``replaced``), and in
  everything read (``replaced_in_candidates``)
- ``selection``: candidates after dedupe, selected, left out by the caps
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.evalset.collect import Collected
from monitor.evalset.dedupe import Dropped
from monitor.evalset.items import EvalItem, content_hash
from monitor.evalset.stratify import Selection
from monitor.times import optional_iso


def vigil_version() -> str:
    try:
        return importlib.metadata.version("vigil")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _sorted_counts(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items()))


def build_manifest(
    *,
    name: str,
    version: str,
    fmt: str,
    created_at: str,
    items: Sequence[EvalItem],
    collected: Collected,
    exact: Sequence[Dropped],
    near: Sequence[Dropped],
    selection: Selection,
    pii: Counter[str],
    parent: tuple[str, str, set[str]] | None,
    since: datetime | None,
    until: datetime | None,
    filters: dict[str, Any],
    dedupe_settings: dict[str, Any],
) -> dict[str, Any]:
    """The manifest dict (see the module docstring). ``parent``: (version, content hash,
    ids) of the previous version, or None for a first version."""
    ids = {item.id for item in items}
    parent_info = None
    if parent is not None:
        p_version, p_hash, p_ids = parent
        parent_info = {
            "version": p_version,
            "content_hash": p_hash,
            "added": sorted(ids - p_ids),
            "removed": sorted(p_ids - ids),
        }
    return {
        "name": name,
        "version": version,
        "created_at": created_at,
        "vigil_version": vigil_version(),
        "format": fmt,
        "items": len(items),
        "content_hash": content_hash(items),
        "parent": parent_info,
        "counts": {
            "reason": _sorted_counts(Counter(r for item in items for r in item.reasons)),
            "primary_reason": _sorted_counts(Counter(selection.primary.values())),
            "topic": _sorted_counts(Counter(item.topic for item in items)),
            "split": _sorted_counts(Counter(item.split for item in items)),
        },
        "source": {
            "since": optional_iso(since),
            "until": optional_iso(until),
            "first_event": optional_iso(collected.first_event),
            "last_event": optional_iso(collected.last_event),
            "failures": collected.failures,
            "events": len(collected.candidates),
            "missing_events": collected.missing_events,
        },
        "scorers": {
            "scorer_versions": {k: sorted(v) for k, v in sorted(collected.scorer_versions.items())},
            "judge_versions": sorted(collected.judge_versions),
            "rubric_versions": {k: sorted(v) for k, v in sorted(collected.rubric_versions.items())},
        },
        "filters": filters,
        "dedupe": {
            **dedupe_settings,
            "exact": sum(len(d.event_ids) for d in exact),
            "near": len(near),
            "dropped": [d.as_dict() for d in (*exact, *near)],
        },
        "pii": {
            "replaced": _sorted_counts(pii),
            "replaced_in_candidates": _sorted_counts(collected.pii_read),
        },
        "selection": {
            "strategy": "round-robin by primary reason (rarest first), then topic",
            "after_dedupe": len(selection.primary) + selection.left_out,
            "selected": len(items),
            "left_out": selection.left_out,
        },
    }
