"""Human review labels as data: the ``review_labels`` table, and JSON Lines in and out.

A label is one reviewer's judgement of one item: a verdict (``pass``/``fail``), 1-5
scores per rubric dimension, a note and a corrected reference answer, any of them
optional. Every change is a new row (the latest per item and reviewer wins), written at
once, so quitting or a crash loses nothing; an undo writes the previous state back, or a
row with ``deleted = 1``.

The JSON Lines form (`export_labels`, `import_labels`), one label a line::

    {"item_id": "...", "reviewer": "ann", "verdict": "fail", "scores": {"helpfulness": 2},
     "note": "...", "reference": "...", "labelled_at": "2026-01-02T03:04:05.000Z"}

Only ``item_id`` is required; ``reviewer`` defaults to the importer's, ``labelled_at`` to
now (given, it keeps "latest wins" meaningful between machines).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import EvalsetError
from monitor.store.base import Store
from monitor.store.queries.labels import current_labels
from monitor.times import iso, now_utc, parse_ts

log = logging.getLogger("vigil.evalset.labels")

VERDICTS = ("pass", "fail", "")
SCORE_RANGE = (1.0, 5.0)


@dataclass(frozen=True)
class Label:
    """One reviewer's label of one item, as it stands."""

    item_id: str
    reviewer: str
    verdict: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    note: str = ""
    reference: str = ""
    version: str = ""
    labelled_at: str = ""
    """RFC 3339; set when stored."""

    @property
    def judged(self) -> bool:
        """Whether the item counts as labelled: it has a verdict or a score (a note or a
        reference alone annotates, it does not judge)."""
        return bool(self.verdict or self.scores)

    @property
    def empty(self) -> bool:
        return not (self.verdict or self.scores or self.note or self.reference)


class LabelBook:
    """The labels of one eval set in the store; writes go straight to the table."""

    def __init__(self, store: Store, evalset: str, version: str) -> None:
        self.store = store
        self.evalset = evalset
        self.version = version
        self._last: datetime | None = None

    def _stamp(self) -> datetime:
        # Rows of one (item, reviewer) are told apart by labelled_at (milliseconds): two
        # quick changes in one millisecond must still be ordered, so time never repeats.
        now = now_utc()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now

    def save(self, label: Label) -> Label:
        """Store ``label`` as of now; returns it with its ``labelled_at``."""
        stamped = replace(label, labelled_at=iso(self._stamp()))
        self.store.insert("review_labels", [_row(self.evalset, self.version, stamped, False)])
        log.debug("label stored", extra={"evalset": self.evalset, "item_id": label.item_id})
        return stamped

    def save_many(self, labels: list[Label]) -> None:
        """Store imported labels (each at its own ``labelled_at``) in one insert."""
        if labels:
            rows = [_row(self.evalset, self.version, label, False) for label in labels]
            self.store.insert("review_labels", rows)

    def delete(self, item_id: str, reviewer: str) -> None:
        """Withdraw the reviewer's label of an item (an undo of its first label)."""
        gone = Label(item_id, reviewer, labelled_at=iso(self._stamp()))
        self.store.insert("review_labels", [_row(self.evalset, self.version, gone, True)])

    def current(self, reviewer: str | None = None) -> dict[tuple[str, str], Label]:
        """(item id, reviewer) -> the label as it stands, oldest first."""
        out: dict[tuple[str, str], Label] = {}
        for row in current_labels(self.store, self.evalset, reviewer):
            label = Label(
                item_id=row["item_id"],
                reviewer=row["reviewer"],
                verdict=row["verdict"],
                scores={k: float(v) for k, v in (row["scores"] or {}).items()},
                note=row["note"],
                reference=row["reference"],
                version=row["version"],
                labelled_at=iso(parse_ts(row["labelled_at"])),
            )
            out[(label.item_id, label.reviewer)] = label
        return out


def _row(evalset: str, version: str, label: Label, deleted: bool) -> dict[str, Any]:
    return {
        "evalset": evalset,
        "item_id": label.item_id,
        "reviewer": label.reviewer,
        "version": label.version or version,
        "verdict": label.verdict,
        "scores": {k: float(v) for k, v in label.scores.items()},
        "note": label.note,
        "reference": label.reference,
        "deleted": int(deleted),
        "labelled_at": label.labelled_at,
    }


# -- JSON Lines -------------------------------------------------------------------------


def label_json(label: Label) -> dict[str, Any]:
    return {
        "item_id": label.item_id,
        "reviewer": label.reviewer,
        "verdict": label.verdict,
        "scores": label.scores,
        "note": label.note,
        "reference": label.reference,
        "version": label.version,
        "labelled_at": label.labelled_at,
    }


def export_labels(labels: Iterable[Label], path: Path) -> int:
    """Write labels as JSON Lines; returns how many."""
    n = 0
    try:
        with path.open("wb") as out:
            for label in labels:
                out.write(orjson.dumps(label_json(label), option=orjson.OPT_APPEND_NEWLINE))
                n += 1
    except OSError as exc:
        raise EvalsetError(f"cannot write {path}: {exc.strerror}") from exc
    return n


@dataclass
class ImportResult:
    labels: list[Label]
    errors: list[str]
    """``FILE:LINE: why`` for each line skipped."""


def parse_labels(path: Path, known_ids: Collection[str], reviewer: str) -> ImportResult:
    """Read a JSON Lines file of labels; a bad line is reported by number and skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise EvalsetError(f"cannot read {path}: {exc.strerror}") from exc
    labels: list[Label] = []
    errors: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            labels.append(_parse_line(line, known_ids, reviewer))
        except ValueError as exc:
            errors.append(f"{path}:{number}: {exc}")
    return ImportResult(labels, errors)


def _parse_line(line: bytes, known_ids: Collection[str], reviewer: str) -> Label:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    item = data.get("item_id")
    if not isinstance(item, str) or not item:
        raise ValueError("item_id missing (a text)")
    if item not in known_ids:
        raise ValueError(f"item_id {item!r} is not an item of this eval set")
    who = data.get("reviewer") or reviewer
    verdict = data.get("verdict") or ""
    if not isinstance(who, str) or not who:
        raise ValueError("reviewer must be a non-empty text")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r}: use pass, fail or leave it empty")
    texts = {key: data.get(key) or "" for key in ("note", "reference")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a text")
    when = data.get("labelled_at") or iso(now_utc())
    try:
        stamp = iso(parse_ts(when))
    except (TypeError, ValueError):
        raise ValueError(f"labelled_at {when!r} is not a time") from None
    return Label(
        item,
        who,
        verdict,
        _scores(data.get("scores")),
        texts["note"],
        texts["reference"],
        str(data.get("version") or ""),
        stamp,
    )


def _scores(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("scores must be an object of dimension -> 1-5")
    out: dict[str, float] = {}
    low, high = SCORE_RANGE
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"score {name!r} must be a number")
        if math.isnan(value) or not low <= value <= high:
            raise ValueError(f"score {name!r} = {value}: scores run from 1 to 5")
        out[str(name)] = float(value)
    return out
