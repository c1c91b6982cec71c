"""Duplicates folded away: the same prompt asked again, or nearly the same one.

- exact: candidates with the same id (the same normalised messages) are one item;
- near: prompts whose word shingles have an estimated Jaccard similarity at or above
  the threshold (MinHash LSH with `datasketch`'s hashing and bands, computed in bulk:
  `monitor.evalset.minhash`) are one item.

The first seen (oldest event) is kept; a folded candidate's events, reasons and alerts
are merged into it, so ``source_event_ids`` lists every event the item stands for. The
kept item's own answer, scores and rationale stay as they were (scores it lacks are
taken from what was folded in). Every fold is reported as a `Dropped` for the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.evalset.collect import Candidate
from monitor.evalset.items import normalise

_WORD = re.compile(r"\w+")
_PROGRESS_EVERY = 2000


@dataclass
class Dropped:
    """A candidate folded into another item."""

    kind: str
    """``exact`` or ``near``."""
    id: str
    """The folded candidate's id (equal to ``into`` for an exact duplicate)."""
    into: str
    """The id of the item it was folded into."""
    similarity: float
    """Estimated Jaccard similarity of the prompts' shingles (1.0 for exact)."""
    event_ids: list[str] = field(default_factory=list)
    """The events that came with it."""

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "id": self.id,
            "into": self.into,
            "similarity": round(self.similarity, 4),
            "event_ids": self.event_ids,
        }


def fold(keep: Candidate, other: Candidate) -> None:
    """Merge ``other`` into ``keep`` (events, reasons, alerts, missing scores)."""
    k, o = keep.item, other.item
    k.source_event_ids.extend(e for e in o.source_event_ids if e not in k.source_event_ids)
    k.reasons = sorted(set(k.reasons) | set(o.reasons))
    k.alert_ids = sorted(set(k.alert_ids) | set(o.alert_ids))
    for key, score in o.scores.items():
        k.scores.setdefault(key, score)
    for key, text in o.metadata.items():
        k.metadata.setdefault(key, text)
    if not k.feedback_comment and o.feedback_comment:
        k.feedback_comment = o.feedback_comment
        keep.pii_comment = other.pii_comment
    k.first_seen = min(k.first_seen, o.first_seen)


def dedupe_exact(candidates: list[Candidate]) -> tuple[list[Candidate], list[Dropped]]:
    """One item per id, in the order of first appearance."""
    kept: dict[str, Candidate] = {}
    dropped: dict[str, Dropped] = {}
    for candidate in candidates:
        identifier = candidate.item.id
        first = kept.get(identifier)
        if first is None:
            kept[identifier] = candidate
            continue
        fold(first, candidate)
        entry = dropped.setdefault(identifier, Dropped("exact", identifier, identifier, 1.0))
        entry.event_ids.extend(candidate.item.source_event_ids)
    return list(kept.values()), list(dropped.values())


def shingles(prompt: str, words: int) -> set[bytes]:
    """Word ``words``-grams of the normalised prompt (the whole prompt when shorter)."""
    tokens = _WORD.findall(normalise(prompt))
    if not tokens:
        return set()
    if len(tokens) <= words:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + words]).encode() for i in range(len(tokens) - words + 1)}


def dedupe_near(
    candidates: list[Candidate],
    jaccard: float,
    permutations: int,
    shingle_words: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[list[Candidate], list[Dropped]]:
    """Fold each candidate into the most similar earlier kept one whose estimated
    Jaccard similarity is at or above ``jaccard`` (MinHash over ``permutations``; LSH
    bands find the candidates, see `monitor.evalset.minhash`). Oldest first, so the
    first seen is kept; ties go to the older kept item."""
    import numpy as np

    from monitor.evalset.minhash import band_keys, signatures

    sets = [shingles(c.item.prompt, shingle_words) for c in candidates]
    sigs = signatures(sets, permutations)
    keys = band_keys(sigs, jaccard, permutations).tolist()
    buckets: list[dict[int, list[int]]] = [{} for _ in range(len(keys[0]) if keys else 0)]
    kept: list[Candidate] = []
    dropped: list[Dropped] = []
    for index, candidate in enumerate(candidates):
        if progress is not None and index % _PROGRESS_EVERY == 0:
            progress("near duplicates", index, len(candidates))
        if not sets[index]:  # an empty prompt is like no other
            kept.append(candidate)
            continue
        row = keys[index]
        found = {o for band, key in enumerate(row) for o in buckets[band].get(key, ())}
        if found:
            others = sorted(found)
            similarity = (sigs[others] == sigs[index]).mean(axis=1)
            best = int(np.argmax(similarity))  # the first (oldest) of equal ones
            if similarity[best] >= jaccard:
                keep = candidates[others[best]]
                fold(keep, candidate)
                dropped.append(
                    Dropped(
                        "near",
                        candidate.item.id,
                        keep.item.id,
                        float(similarity[best]),
                        list(candidate.item.source_event_ids),
                    )
                )
                continue
        for band, key in enumerate(row):
            buckets[band].setdefault(key, []).append(index)
        kept.append(candidate)
    if progress is not None:
        progress("near duplicates", len(candidates), len(candidates))
    return kept, dropped
