"""Which items make a version when there are more than it may hold: stratified by reason
and topic, so one loud failure mode (or one busy route) cannot crowd out the rest.

Each item counts under one *primary* reason: the rarest of its reasons (ties by name),
so an item caught both by a common and a rare rule speaks for the rare one. Within a
reason, items are taken round-robin over topics (each topic's items oldest first);
``per_reason`` caps each reason's list. ``max_items`` then takes round-robin over the
reasons, rarest first, until the version is full. Everything is ordered by data (counts,
names, event times, ids), so the same input always selects the same items.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest

from monitor.evalset.collect import Candidate


@dataclass
class Selection:
    """The selected items (oldest first) and how they were chosen."""

    items: list[Candidate]
    primary: dict[str, str]
    """item id -> its primary reason."""
    left_out: int


def _round_robin(lists: Iterable[Sequence[Candidate]]) -> list[Candidate]:
    return [c for layer in zip_longest(*lists) for c in layer if c is not None]


def _order(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (c.item.first_seen, c.item.id))


def stratify(
    candidates: Sequence[Candidate], per_reason: int | None, max_items: int | None
) -> Selection:
    """Select at most ``per_reason`` items per primary reason and ``max_items`` in all."""
    frequency = Counter(reason for c in candidates for reason in c.item.reasons)
    primary: dict[str, str] = {}
    strata: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in _order(candidates):
        item = candidate.item
        reason = min(item.reasons or [""], key=lambda r: (frequency[r], r))
        primary[item.id] = reason
        strata[reason][item.topic].append(candidate)
    per: dict[str, list[Candidate]] = {}
    for reason, topics in strata.items():
        ordered = _round_robin(topics[t] for t in sorted(topics))
        per[reason] = ordered[:per_reason] if per_reason is not None else ordered
    rarest_first = sorted(per, key=lambda r: (frequency[r], r))
    chosen = _round_robin(per[r] for r in rarest_first)
    if max_items is not None:
        chosen = chosen[:max_items]
    selected = _order(chosen)
    keep = {c.item.id for c in selected}
    return Selection(
        selected, {i: r for i, r in primary.items() if i in keep}, len(candidates) - len(selected)
    )
