"""Captured failures and what is known about their events, as candidate eval items.

One candidate per failing event: its prompt messages (from ``events.request``), the
production answer as ``observed``, every reason it was captured for, its scores, the
judge's rationale, the feedback comment, the alerts it was an example of. All text is
PII-scrubbed here, before ids are computed, so an id never depends on PII and a
re-export gives the same ids and splits.

Reads are a handful of batched queries (`FailureWindow`), whatever the number of events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from monitor.evalset.items import EvalItem, Observed, item_id, message_text, split_of
from monitor.evalset.scrub import scrub_many
from monitor.store.base import Store
from monitor.store.queries.failures import FailureWindow
from monitor.times import iso, parse_ts

#: progress(stage, done, total): called as a long export advances.
Progress = Callable[[str, int, int], None]
_SCRUB_CHUNK = 5000


@dataclass
class Candidate:
    """One failing event as an eval item, with the PII replaced in its text."""

    item: EvalItem
    pii: Counter[str] | None = None
    """Placeholders written per kind in the item's text, its feedback comment aside..."""
    pii_comment: Counter[str] | None = None
    """...and in the comment (which a fold may take from a duplicate). None: none."""


@dataclass
class Collected:
    """The candidates of a window and what the manifest says about where they came from."""

    candidates: list[Candidate]
    failures: int = 0
    missing_events: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    scorer_versions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    rubric_versions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    judge_versions: set[str] = field(default_factory=set)
    pii_read: Counter[str] = field(default_factory=Counter)


def _messages(request: str, prompt: str) -> list[dict[str, Any]]:
    """Role and text of each prompt message (parts joined); the stored prompt as one
    user message when the request cannot be read."""
    try:
        data = orjson.loads(request) if request else {}
    except orjson.JSONDecodeError:
        data = {}
    raw = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        return [{"role": "user", "content": prompt}]
    return [
        {"role": str(m.get("role", "user")), "content": message_text(m)}
        for m in raw
        if isinstance(m, dict)
    ]


def _last_user(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return str(message["content"])
    return str(messages[-1]["content"]) if messages else ""


class _Evidence:
    """Per-event facts gathered from the failure window's queries."""

    def __init__(self, window: FailureWindow, collected: Collected) -> None:
        self.scores: dict[str, dict[str, float]] = defaultdict(dict)
        self.rationale: dict[str, dict[str, str]] = {}
        self.comment: dict[str, str] = {}
        for row in window.scores():  # ordered by version: the newest value wins
            self.scores[row["event_id"]][f"{row['scorer']}.{row['name']}"] = float(row["value"])
            collected.scorer_versions[row["scorer"]].add(row["scorer_version"])
        for row in window.judgments():
            scores = self.scores[row["event_id"]]
            for dim, value in row["scores"].items():
                scores.setdefault(f"judge.{dim}", float(value))
            self.rationale[row["event_id"]] = dict(row["reasons"])
            collected.rubric_versions[row["rubric"]].add(row["rubric_version"])
            collected.judge_versions.add(row["judge_version"])
        for row in window.feedback():
            if row["comment"]:
                self.comment[row["event_id"]] = row["comment"]


def collect(
    store: Store,
    since: datetime | None,
    until: datetime | None,
    reasons: Sequence[str] | None,
    test_share: float,
    progress: Progress | None = None,
) -> Collected:
    """The candidates for the failures with ``since <= ts < until`` (and ``reasons``),
    oldest event first."""
    window = FailureWindow(store, since, until, reasons)
    collected = Collected([])
    tick = progress or (lambda stage, done, total: None)
    failures = window.failures()
    collected.failures = len(failures)
    tick("reading", 1, 4)
    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in failures:
        by_event[row["event_id"]].append(row)
    if not by_event:
        return collected
    events = sorted(window.events(), key=lambda e: (e["ts"], e["event_id"]))
    tick("reading", 2, 4)
    evidence = _Evidence(window, collected)
    tick("reading", 4, 4)
    collected.missing_events = len(by_event) - len(events)
    if events:
        collected.first_event = parse_ts(events[0]["ts"])
        collected.last_event = parse_ts(events[-1]["ts"])
    for start in range(0, len(events), _SCRUB_CHUNK):
        chunk = events[start : start + _SCRUB_CHUNK]
        collected.candidates.extend(_build(chunk, by_event, evidence, test_share, collected))
        tick("scrubbing PII", start + len(chunk), len(events))
    return collected


def _build(
    events: list[dict[str, Any]],
    by_event: dict[str, list[dict[str, Any]]],
    evidence: _Evidence,
    test_share: float,
    collected: Collected,
) -> list[Candidate]:
    # Every text of the chunk is scrubbed in one batch (one joined scan finds the few
    # texts with PII); `shapes` says which texts are whose.
    texts: list[str] = []
    shapes = []
    details: list[str] = []
    for event in events:
        eid = event["event_id"]
        messages = _messages(event["request"], event["prompt"])
        rationale = evidence.rationale.get(eid, {})
        texts.extend(m["content"] for m in messages)
        texts.append(event["response"])
        texts.extend(rationale.values())
        texts.append(evidence.comment.get(eid, ""))
        shapes.append((messages, list(rationale)))
        details.extend(r["detail"] for r in by_event[eid])
    clean, counts = scrub_many(texts)
    # Details are machine-made, but a JSON error may quote the answer: scrubbed too.
    clean_details = iter(scrub_many(details)[0])
    out: list[Candidate] = []
    at = 0
    for event, (messages, dims) in zip(events, shapes, strict=True):
        eid = event["event_id"]
        n = len(messages) + len(dims) + 2
        pii: Counter[str] | None = None
        for tally in counts[at : at + n - 1]:
            if tally:
                pii = pii or Counter()
                pii.update(tally)
        pii_comment = counts[at + n - 1]
        own = clean[at : at + n]
        at += n
        scrubbed = [
            {"role": m["role"], "content": text}
            for m, text in zip(messages, own[: len(messages)], strict=True)
        ]
        rows = by_event[eid]
        identifier = item_id(scrubbed)
        metadata = {f"detail.{r['reason']}": next(clean_details) for r in rows}
        item = EvalItem(
            id=identifier,
            split=split_of(identifier, test_share),
            messages=scrubbed,
            prompt=_last_user(scrubbed),
            observed=Observed(
                content=own[len(messages)],
                model=event["model"],
                model_version=event["model_version"],
                finish_reason=event["finish_reason"],
            ),
            reasons=sorted({r["reason"] for r in rows}),
            scores=evidence.scores.get(eid, {}),
            judge_rationale=dict(zip(dims, own[len(messages) + 1 : -1], strict=True)),
            feedback_comment=own[-1],
            topic=rows[0]["topic"],
            model_version=event["model_version"],
            source_event_ids=[eid],
            alert_ids=sorted({a for r in rows for a in r["alert_id"].split(",") if a}),
            first_seen=iso(parse_ts(event["ts"])),
            metadata={k: v for k, v in metadata.items() if v},
        )
        for tally in (pii, pii_comment):
            if tally:
                collected.pii_read.update(tally)
        out.append(Candidate(item, pii, pii_comment))
    return out
