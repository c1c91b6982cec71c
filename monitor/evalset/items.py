"""One eval-set item, its stable id and its split, and the JSON Lines file that holds them.

An item is one production prompt that failed, as the offline eval set keeps it: the
messages (PII already replaced by typed placeholders), the answer production gave (the
observed, failing one), why it was captured, the scores and the judge's reasons, and an
empty ``reference`` for reviewers to fill.

Identity: ``id`` hashes the normalised prompt messages (Unicode NFKC, case-folded, white
space collapsed), so the same question asked again, or with other spacing or casing, is
the same item in every version. ``split`` hashes the id, so an item never changes split
between versions and a test item can never leak into dev by re-export.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from monitor.errors import EvalsetError

_SPACE = re.compile(r"\s+")
_SPLIT_SALT = b"vigil.split\x00"


class Observed(msgspec.Struct, frozen=True, kw_only=True):
    """What the production model answered (the failing answer)."""

    content: str
    model: str = ""
    model_version: str = ""
    finish_reason: str = ""


class EvalItem(msgspec.Struct, kw_only=True):
    """One item of an eval-set version (one line of ``items.jsonl``)."""

    id: str
    """Stable id: `item_id` of the messages."""
    split: str
    """``test`` or ``dev``, from `split_of` the id."""
    messages: list[dict[str, Any]]
    """The prompt as chat messages (role, content), PII replaced."""
    prompt: str
    """The last user message (what the judge, drift and dedupe look at), PII replaced."""
    observed: Observed | None = None
    """Production's answer, PII replaced."""
    reasons: list[str] = msgspec.field(default_factory=list)
    """Capture rules that caught it (``judge_low``, ``toxic``, ``negative_feedback``...)."""
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    """``scorer.name`` -> value at capture (``judge.helpfulness``, ``toxicity.toxicity``)."""
    judge_rationale: dict[str, str] = msgspec.field(default_factory=dict)
    """Rubric dimension -> the judge's stated reason."""
    feedback_comment: str = ""
    """The user's comment with negative feedback, PII replaced."""
    topic: str = ""
    """The topic the item was stratified by (the route, or the drift cluster)."""
    model_version: str = ""
    """The checkpoint that failed."""
    source_event_ids: list[str] = msgspec.field(default_factory=list)
    """Every production event folded into this item (duplicates included)."""
    alert_ids: list[str] = msgspec.field(default_factory=list)
    """Alerts whose examples included one of those events."""
    first_seen: str = ""
    """Event time of the earliest source event (RFC 3339)."""
    reference: str = ""
    """The expected answer; empty until a reviewer writes one."""
    tests: list[str] | None = None
    """For code items: test programs an answer must pass (pass@k)."""
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    """Anything else worth keeping (free string map)."""


def normalise(text: str) -> str:
    """The form two prompts are compared in: NFKC, case-folded, white space collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def item_id(messages: Sequence[dict[str, Any]]) -> str:
    """The stable id of a prompt: 16 hex digits of SHA-256 over its normalised messages."""
    h = hashlib.sha256()
    for message in messages:
        h.update(str(message.get("role", "user")).encode())
        h.update(b"\x00")
        h.update(normalise(message_text(message)).encode())
        h.update(b"\x01")
    return h.hexdigest()[:16]


def message_text(message: dict[str, Any]) -> str:
    """A message's text; for an OpenAI-style list of parts, its text parts joined."""
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    return "\n".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)


def split_of(identifier: str, test_share: float) -> str:
    """``test`` or ``dev`` for an item id: a hash, so it is the same in every version."""
    digest = hashlib.sha256(_SPLIT_SALT + identifier.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_share else "dev"


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(EvalItem)


def encode_item(item: EvalItem) -> bytes:
    """One JSON line (no newline)."""
    return _ENCODER.encode(item)


def write_items(path: Path, items: Iterable[EvalItem]) -> int:
    """Write ``items`` as JSON Lines; returns how many."""
    n = 0
    with path.open("wb") as out:
        for item in items:
            out.write(encode_item(item))
            out.write(b"\n")
            n += 1
    return n


def iter_items(path: Path) -> Iterator[EvalItem]:
    """The items of a JSON Lines file; `EvalsetError` naming the line for a bad one."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise EvalsetError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield _DECODER.decode(line)
            except msgspec.DecodeError as exc:
                raise EvalsetError(f"{path}:{number}: not an eval-set item ({exc})") from exc


def read_items(path: Path) -> list[EvalItem]:
    """All items of a JSON Lines file (see `iter_items`)."""
    return list(iter_items(path))


def content_hash(items: Iterable[EvalItem]) -> str:
    """SHA-256 of the items' canonical lines in id order: equal content, equal hash."""
    lines = sorted(encode_item(item) for item in items)
    h = hashlib.sha256()
    for line in lines:
        h.update(line)
        h.update(b"\n")
    return h.hexdigest()
