"""The human review queue as a state machine, with no terminal in it (the CLI drives it).

The queue holds the items of one eval-set version (optionally one split) in file order
and one reviewer's labels. It starts at the first item that reviewer has not judged
(verdict or score), so starting again resumes where the last session stopped. Every
change is stored at once through the `LabelSink`; a verdict moves on to the next
unjudged item, and so do skip and next. Undo reverts the last change of this session
(the item's label goes back to what it was, or away), and moves back to that item; with
nothing left to undo in this session, it withdraws the reviewer's most recent label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from monitor.evalset.items import EvalItem
from monitor.evalset.labels import Label

log = logging.getLogger("vigil.evalset.review")

#: Dimensions to score when neither the item nor the rubric names any.
FALLBACK_DIMENSIONS = ("helpfulness", "correctness", "safety")
#: Keys the queue itself uses, which no dimension may take.
RESERVED_KEYS = frozenset("pfnrsuq0123456789")
JUDGE_PREFIX = "judge."


class LabelSink(Protocol):
    """Where labels go (`monitor.evalset.labels.LabelBook` in the store)."""

    def save(self, label: Label) -> Label: ...

    def delete(self, item_id: str, reviewer: str) -> None: ...


def rubric_dimensions(rubric: str) -> list[str]:
    """The dimensions of the judge's rubric, or `FALLBACK_DIMENSIONS` when it cannot be
    loaded (renamed module, bad file): reviewing must not depend on the judge's code."""
    try:
        from monitor.scorers.judge.rubric import load_rubric

        names = [str(d.name) for d in load_rubric(rubric).dimensions]
    except Exception as exc:  # any failure here only costs the default dimensions
        log.warning("rubric not loaded; default dimensions", extra={"error": str(exc)[:200]})
        return list(FALLBACK_DIMENSIONS)
    return names or list(FALLBACK_DIMENSIONS)


def item_dimensions(item: EvalItem, default: Sequence[str]) -> list[str]:
    """The dimensions to score an item on: those the judge scored it on, else ``default``."""
    judged = [k[len(JUDGE_PREFIX) :] for k in item.scores if k.startswith(JUDGE_PREFIX)]
    return judged or list(default)


def dimension_keys(dimensions: Iterable[str]) -> dict[str, str]:
    """A one-letter key per dimension (key -> dimension): its first free letter, so
    helpfulness is ``h``, correctness ``c``, coherence ``o``; safety, whose ``s`` is skip,
    gets ``a``. Deterministic for a given order of dimensions."""
    keys: dict[str, str] = {}
    for name in dict.fromkeys(dimensions):
        candidates = [c for c in name.lower() if c.isalpha()] + list("abcdeghijklmotvwxyz")
        for c in candidates:
            if c not in RESERVED_KEYS and c not in keys:
                keys[c] = name
                break
    return keys


@dataclass(frozen=True)
class Change:
    """One stored change, for undo: where it happened and what the label was before."""

    position: int
    before: Label | None


class ReviewQueue:
    """One reviewer working through the items of one eval-set version."""

    def __init__(
        self,
        items: Sequence[EvalItem],
        labels: dict[str, Label],
        reviewer: str,
        sink: LabelSink,
        version: str = "",
    ) -> None:
        """``labels``: item id -> the reviewer's current label (from the store); labels by
        anyone else are ignored."""
        self.items = list(items)
        self.labels = {i: lb for i, lb in labels.items() if lb.reviewer == reviewer}
        self.reviewer = reviewer
        self.version = version
        self._sink = sink
        self._history: list[Change] = []
        self.skipped: set[str] = set()
        self.position: int | None = self._next_from(0)

    # -- reading ----------------------------------------------------------------------

    @property
    def current(self) -> EvalItem | None:
        return None if self.position is None else self.items[self.position]

    @property
    def done(self) -> bool:
        return self.position is None

    def label_of(self, item: EvalItem) -> Label:
        return self.labels.get(item.id) or Label(item.id, self.reviewer, version=self.version)

    def progress(self) -> tuple[int, int]:
        """(items judged by this reviewer, items in the queue)."""
        judged = sum(1 for item in self.items if self.label_of(item).judged)
        return judged, len(self.items)

    def _next_from(self, start: int) -> int | None:
        for i in range(start, len(self.items)):
            item = self.items[i]
            if item.id not in self.skipped and not self.label_of(item).judged:
                return i
        return None

    # -- changing ---------------------------------------------------------------------

    def _store(self, new: Label) -> Label:
        assert self.position is not None, "no current item"
        before = self.labels.get(new.item_id)
        saved = self._sink.save(replace(new, version=self.version or new.version))
        self.labels[new.item_id] = saved
        self._history.append(Change(self.position, before))
        return saved

    def _current_label(self) -> Label:
        item = self.current
        if item is None:
            raise RuntimeError("the queue is finished")
        return self.label_of(item)

    def verdict(self, verdict: str) -> Label:
        """``pass`` or ``fail`` for the current item; moves on."""
        if verdict not in ("pass", "fail"):
            raise ValueError(f"verdict {verdict!r}")
        saved = self._store(replace(self._current_label(), verdict=verdict))
        self._advance()
        return saved

    def score(self, dimension: str, value: int) -> Label:
        """A 1-5 score on one dimension for the current item; stays on it."""
        if not 1 <= value <= 5:
            raise ValueError(f"score {value}: scores run from 1 to 5")
        label = self._current_label()
        return self._store(replace(label, scores={**label.scores, dimension: float(value)}))

    def note(self, text: str) -> Label:
        return self._store(replace(self._current_label(), note=text))

    def reference(self, text: str) -> Label:
        return self._store(replace(self._current_label(), reference=text))

    def skip(self) -> None:
        """Leave the current item unlabelled for now (it comes back next session)."""
        item = self.current
        if item is not None:
            self.skipped.add(item.id)
            self._advance()

    def next(self) -> None:
        """Move on, keeping what the current item has (e.g. scores without a verdict)."""
        if self.position is not None:
            self._advance()

    def _advance(self) -> None:
        assert self.position is not None
        self.position = self._next_from(self.position + 1)

    def undo(self) -> EvalItem | None:
        """Revert the last change and go back to its item; None when there is nothing to
        undo."""
        if self._history:
            change = self._history.pop()
            item = self.items[change.position]
            if change.before is None or change.before.empty:
                self._sink.delete(item.id, self.reviewer)
                self.labels.pop(item.id, None)
            else:
                self.labels[item.id] = self._sink.save(change.before)
            self.position = change.position
            self.skipped.discard(item.id)
            return item
        return self._undo_stored()

    def _undo_stored(self) -> EvalItem | None:
        # Nothing done in this session: withdraw the newest label from an earlier one
        # (its earlier states are not kept apart, so it goes altogether).
        positions = {item.id: i for i, item in enumerate(self.items)}
        mine = [lb for lb in self.labels.values() if lb.item_id in positions and not lb.empty]
        if not mine:
            return None
        newest = max(mine, key=lambda lb: lb.labelled_at)
        self._sink.delete(newest.item_id, self.reviewer)
        del self.labels[newest.item_id]
        self.position = positions[newest.item_id]
        self.skipped.discard(newest.item_id)
        return self.items[self.position]
