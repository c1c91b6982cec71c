"""The leakage check: which items of an eval set appear in training data.

An item is *contaminated* when one training line shares a run of at least
``leakage.ngram`` (13) normalised words with its prompt: the usual long n-gram test.
The eval set's n-grams are indexed (`NgramIndex`); each training file is streamed once
and every line looked up, so the cost grows with the training data and hardly with the
eval set (no item-by-item scan).

What is compared on the eval side is the prompt (the text of the user messages), not
the observed answer nor the reference: a model that saw the question in training can
recall an answer to it, which is the leak that invalidates a score. The observed answer
is production's own (failing) output, and the reference is written by reviewers after
the fact, so finding either in training data says nothing about the item's question
having been seen. The training side is compared whole (every user and assistant text,
prompt and completion...), since a prompt copied into a completion leaks just the same.

With ``--embeddings`` (`monitor.evalset.leakage_embed`), near-copies that share no long
n-gram are found by embedding cosine and reported separately; an item flagged either
way counts towards the leak rate.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from monitor.evalset.items import EvalItem
from monitor.evalset.ngrams import Found, NgramIndex, Overlap, Words, words
from monitor.evalset.training import JsonlSource, OnBad, Source, prompt_texts

log = logging.getLogger("vigil.evalset.leakage")

#: Matches kept per item (all are counted); one boilerplate prompt can be in 100,000s
#: of training lines, and the report and its memory stay bounded.
MAX_MATCHES = 20
#: Bad lines kept with their reasons (all are counted).
MAX_BAD_LINES = 100
#: Words of a shared span kept in the report.
MAX_SPAN_WORDS = 60
#: Lines between progress callbacks.
TICK_LINES = 4096

#: progress(task, done, total or None, unit ("bytes" or "lines"), lines read)
Progress = Callable[[str, int, int | None, str, int], None]


class Match(msgspec.Struct, kw_only=True):
    """One training line that shares a long n-gram with an item."""

    source: str
    line: int
    other_id: str = ""
    """The item id on that "line" when the source is another eval set."""
    longest: int
    """Words in the longest shared run."""
    shared_ngrams: int
    """Distinct n-grams of the item found in the line."""
    span: str
    """The longest shared run, normalised words (the first 60)."""


class ItemLeak(msgspec.Struct, kw_only=True):
    """A contaminated item and where it was found."""

    item_id: str
    split: str
    lines: int
    """Training lines that contain it (all of them; ``matches`` keeps the first 20)."""
    longest: int
    """The longest shared run over all those lines."""
    matches: list[Match]


class NearMatch(msgspec.Struct, kw_only=True):
    source: str
    line: int
    other_id: str = ""
    cosine: float


class ItemNear(msgspec.Struct, kw_only=True):
    """An item with an embedding near-duplicate in training data."""

    item_id: str
    split: str
    lines: int
    best: float
    matches: list[NearMatch]


#: embeddings(items, sources, progress) -> the items with a near-duplicate
NearFinder = Callable[[Sequence[EvalItem], Sequence[Source], "Progress | None"], list[ItemNear]]


class BadLine(msgspec.Struct):
    source: str
    line: int
    reason: str


class SourceStats(msgspec.Struct, kw_only=True):
    source: str
    kind: str
    lines: int
    """Lines read (good and bad)."""
    skipped: int
    """Bad lines skipped."""
    seconds: float
    workers: int = 1
    """Processes that shared it."""


class LeakageReport(msgspec.Struct, kw_only=True):
    evalset: str
    ngram: int
    items: int
    """Items checked."""
    too_short: int
    """Items whose prompt has fewer than ``ngram`` words: no n-gram test is possible."""
    contaminated: int
    """Items sharing an n-gram with a training line."""
    near_duplicates: int | None
    """Items with an embedding near-duplicate (None: not asked)."""
    flagged: int
    """Items either way."""
    rate: float
    max_leak_rate: float
    passed: bool
    lines: int
    skipped: int
    seconds: float
    lines_per_s: float
    sources: list[SourceStats]
    leaks: list[ItemLeak]
    near: list[ItemNear] = msgspec.field(default_factory=list)
    bad_lines: list[BadLine] = msgspec.field(default_factory=list)
    embedding_cosine: float | None = None


class _Leaks:
    """Accumulates hits per item, bounded."""

    def __init__(self) -> None:
        self.by_item: dict[int, ItemLeak] = {}

    def add(self, item: EvalItem, index: int, match: Match) -> None:
        leak = self.by_item.get(index)
        if leak is None:
            leak = self.by_item[index] = ItemLeak(
                item_id=item.id, split=item.split, lines=0, longest=0, matches=[]
            )
        leak.lines += 1
        leak.longest = max(leak.longest, match.longest)
        if len(leak.matches) < MAX_MATCHES:
            leak.matches.append(match)


class NgramCheck:
    """The n-gram side of the check, one source at a time."""

    def __init__(self, items: Sequence[EvalItem], n: int) -> None:
        self.items = list(items)
        self.index = NgramIndex(n, [[words(t) for t in prompt_texts(i)] for i in self.items])
        self.leaks = _Leaks()
        self.bad: list[BadLine] = []
        self.skipped = 0
        self.stats: list[SourceStats] = []

    def scan(self, source: Source, progress: Progress | None = None) -> SourceStats:
        """Stream ``source`` once, recording hits and bad lines."""
        label = source.label
        skipped_before = self.skipped

        def on_bad(number: int, reason: str) -> None:
            self.skipped += 1
            if len(self.bad) < MAX_BAD_LINES:
                self.bad.append(BadLine(label, number, reason))

        started = time.perf_counter()
        number = 0
        if progress is not None:
            progress(label, source.position(), source.total, source.unit, 0)
        # The loop makes no reference cycles, and the collector's passes over its
        # short-lived parsed lines cost up to a fifth of the time (measured on the bench).
        collecting = gc.isenabled()
        gc.disable()
        try:
            number = self._loop(source, on_bad, progress)
        finally:
            if collecting:
                gc.enable()
        if progress is not None:
            progress(label, source.total or source.position(), source.total, source.unit, number)
        stats = SourceStats(
            source=label,
            kind=source.kind,
            lines=number,
            skipped=self.skipped - skipped_before,
            seconds=round(time.perf_counter() - started, 3),
        )
        self.stats.append(stats)
        return stats

    def _loop(self, source: Source, on_bad: OnBad, progress: Progress | None) -> int:
        index = self.index
        n, get, slicers, label = index.n, index.get, index.slicers, source.label
        number = 0
        # The hot loop: one tokenisation and a few dict lookups per text, the lookups
        # inlined (`NgramIndex.any_window`); all else runs only for the rare text with a
        # candidate window.
        for number, texts in source.texts(on_bad):
            found: list[tuple[Words, Found]] | None = None
            for text in texts:
                segment = words(text)
                if len(segment) >= n and any(
                    map(get, zip(*map(segment.__getitem__, slicers), strict=False))
                ):
                    if found is None:
                        found = []
                    found.append((segment, index.locate(segment)))
            if found is not None:
                self._record(source, number, found)
            if progress is not None and not number % TICK_LINES:
                progress(label, source.position(), source.total, source.unit, number)
        return number

    def _record(self, source: Source, number: int, found: list[tuple[Words, Found]]) -> None:
        best: dict[int, Overlap] = {}
        for segment, where in found:
            for i, overlap in self.index.confirm(segment, where).items():
                if i not in best or overlap.longest > best[i].longest:
                    best[i] = overlap
        segments = [segment for segment, _ in found]
        for i, overlap in best.items():
            self.leaks.add(
                self.items[i],
                i,
                Match(
                    source=source.label,
                    line=number,
                    other_id=source.other_id(number),
                    longest=overlap.longest,
                    shared_ngrams=self.index.shared_ngrams(i, segments),
                    span=b" ".join(overlap.span[:MAX_SPAN_WORDS]).decode(),
                ),
            )

    def too_short(self) -> int:
        return sum(not self.index.checkable(i) for i in range(len(self.items)))


def check_leakage(
    evalset: str,
    items: Sequence[EvalItem],
    sources: Sequence[Source],
    *,
    n: int,
    max_leak_rate: float,
    progress: Progress | None = None,
    embeddings: NearFinder | None = None,
    embedding_cosine: float | None = None,
    workers: int = 1,
    parallel_min_bytes: int = 64 << 20,
) -> LeakageReport:
    """Check ``items`` against every source by n-grams, then (when ``embeddings`` is
    given, e.g. `monitor.evalset.leakage_embed.NearDuplicates`) by embeddings. A plain
    file of at least ``parallel_min_bytes`` is shared by ``workers`` processes."""
    started = time.perf_counter()
    check = NgramCheck(items, n)
    for source in sources:
        if (
            workers > 1
            and isinstance(source, JsonlSource)
            and not source.gzip
            and source.end - source.start >= max(parallel_min_bytes, 1)
        ):
            from monitor.evalset.leakage_parallel import scan_parallel

            scan_parallel(check, source, items, workers, progress)
        else:
            check.scan(source, progress)
    seconds = time.perf_counter() - started
    near = None if embeddings is None else embeddings(items, sources, progress)
    leaks = sorted(check.leaks.by_item.values(), key=lambda leak: (-leak.longest, leak.item_id))
    flagged = {leak.item_id for leak in leaks} | {x.item_id for x in near or []}
    lines = sum(s.lines for s in check.stats)
    rate = len(flagged) / len(items) if items else 0.0
    report = LeakageReport(
        evalset=evalset,
        ngram=n,
        items=len(items),
        too_short=check.too_short(),
        contaminated=len(leaks),
        near_duplicates=None if near is None else len(near),
        flagged=len(flagged),
        rate=rate,
        max_leak_rate=max_leak_rate,
        passed=rate <= max_leak_rate,
        lines=lines,
        skipped=check.skipped,
        seconds=round(seconds, 3),
        lines_per_s=round(lines / seconds, 1) if seconds > 0 else 0.0,
        sources=check.stats,
        leaks=leaks,
        near=near or [],
        bad_lines=check.bad,
        embedding_cosine=embedding_cosine,
    )
    log.info(
        "leakage check done",
        extra={
            "evalset": evalset,
            "items": report.items,
            "contaminated": report.contaminated,
            "near_duplicates": report.near_duplicates,
            "lines": lines,
            "skipped": report.skipped,
            "lines_per_s": report.lines_per_s,
        },
    )
    return report
