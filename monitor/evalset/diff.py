"""Two versions compared item by item: what was added, removed or changed (by id).

Ids are stable (`items.item_id`), so an id in both versions is the same prompt; it is
*changed* when any field differs (more source events, a new reason, a reference a
reviewer wrote), and the fields are named.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from monitor.evalset.items import EvalItem
from monitor.evalset.versions import EvalSet


def _by_reason(items: Iterable[EvalItem]) -> dict[str, int]:
    return dict(sorted(Counter(r for item in items for r in item.reasons).items()))


def _changed_fields(a: EvalItem, b: EvalItem) -> list[str]:
    return [f for f in EvalItem.__struct_fields__ if getattr(a, f) != getattr(b, f)]


def diff_versions(a: EvalSet, b: EvalSet) -> dict[str, Any]:
    """``added`` / ``removed`` (items), ``changed`` (id and fields), ``unchanged`` (a
    count), and counts by reason of each side and of what was added and removed."""
    old = {item.id: item for item in a.items}
    new = {item.id: item for item in b.items}
    added = [new[i] for i in sorted(new.keys() - old.keys())]
    removed = [old[i] for i in sorted(old.keys() - new.keys())]
    changed = []
    for identifier in sorted(old.keys() & new.keys()):
        fields = _changed_fields(old[identifier], new[identifier])
        if fields:
            changed.append({"id": identifier, "fields": fields})
    return {
        "a": f"{a.name}@{a.version}",
        "b": f"{b.name}@{b.version}",
        "added": [{"id": i.id, "reasons": i.reasons, "prompt": i.prompt} for i in added],
        "removed": [{"id": i.id, "reasons": i.reasons, "prompt": i.prompt} for i in removed],
        "changed": changed,
        "unchanged": len(old.keys() & new.keys()) - len(changed),
        "counts": {
            "a": _by_reason(a.items),
            "b": _by_reason(b.items),
            "added": _by_reason(added),
            "removed": _by_reason(removed),
        },
    }
