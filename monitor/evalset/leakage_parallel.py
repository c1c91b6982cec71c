"""One large training file checked by several processes, each over a byte range.

The n-gram check is pure Python, one core per process; a file of a few hundred MB is
split at line starts into ``leakage.workers`` ranges, each scanned by a spawned process
with its own copy of the (small) index. A range numbers its lines from 1; the ranges'
line counts, summed in order, turn those into line numbers of the file when the results
are merged. Spawned, not forked: the parent may hold threads (a progress bar, logging).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from monitor.evalset.items import EvalItem
from monitor.evalset.leakage import (
    MAX_BAD_LINES,
    MAX_MATCHES,
    BadLine,
    ItemLeak,
    NgramCheck,
    Progress,
    SourceStats,
)
from monitor.evalset.training import JsonlSource

#: The worker's shared progress counters: 2 per range (bytes read, lines read).
_counters: Any = None


def workers_for(setting: int) -> int:
    """Processes for ``leakage.workers`` (0: one per CPU this process may use, at most 8)."""
    if setting:
        return setting
    return max(1, min(8, len(os.sched_getaffinity(0))))


def ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` byte ranges of ``path`` (fewer for a small file), each from a line start."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as handle:
        for k in range(1, parts):
            handle.seek(max(size * k // parts, bounds[-1]))
            handle.readline()  # to the start of the next line
            bounds.append(min(handle.tell(), size))
    bounds.append(size)
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _init(counters: Any) -> None:
    global _counters
    _counters = counters


def _scan_range(
    items: list[EvalItem], n: int, path: str, field: str | None, k: int, start: int, end: int
) -> tuple[int, int, dict[int, ItemLeak], list[BadLine]]:
    check = NgramCheck(items, n)

    def progress(_task: str, done: int, _total: int | None, _unit: str, lines: int) -> None:
        _counters[2 * k] = done - start
        _counters[2 * k + 1] = lines

    stats = check.scan(JsonlSource(Path(path), field, start, end), progress)
    return stats.lines, stats.skipped, check.leaks.by_item, check.bad


def scan_parallel(
    check: NgramCheck,
    source: JsonlSource,
    items: Sequence[EvalItem],
    workers: int,
    progress: Progress | None,
) -> SourceStats:
    """Scan ``source`` in ``workers`` processes and merge what they found into ``check``."""
    started = time.perf_counter()
    parts = ranges(source.path, workers)
    ctx = get_context("spawn")
    counters = ctx.Array("q", 2 * len(parts), lock=False)
    with ProcessPoolExecutor(len(parts), ctx, initializer=_init, initargs=(counters,)) as pool:
        futures: list[Future[tuple[int, int, dict[int, ItemLeak], list[BadLine]]]] = [
            pool.submit(
                _scan_range, list(items), check.index.n, str(source.path), source.field, k, a, b
            )
            for k, (a, b) in enumerate(parts)
        ]
        pending: set[Any] = set(futures)
        if progress is not None:
            progress(source.label, 0, source.total, source.unit, 0)
        while pending:
            _done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in _done):
                break
            if progress is not None:
                read, lines = sum(counters[0::2]), sum(counters[1::2])
                progress(source.label, read, source.total, source.unit, lines)
        results = [f.result() for f in futures]  # raises a worker's EvalsetError here
    offset = skipped = 0
    for lines, bad_count, leaks, bad in results:
        _merge(check, source.label, offset, leaks, bad)
        offset += lines
        skipped += bad_count
    check.skipped += skipped
    if progress is not None:
        progress(source.label, source.total or 0, source.total, source.unit, offset)
    stats = SourceStats(
        source=source.label,
        kind=source.kind,
        lines=offset,
        skipped=skipped,
        seconds=round(time.perf_counter() - started, 3),
        workers=len(parts),
    )
    check.stats.append(stats)
    return stats


def _merge(
    check: NgramCheck, label: str, offset: int, leaks: dict[int, ItemLeak], bad: list[BadLine]
) -> None:
    """Add one range's results, its line numbers shifted by the lines before it."""
    for line in bad:
        if len(check.bad) < MAX_BAD_LINES:
            check.bad.append(BadLine(label, line.line + offset, line.reason))
    for i, leak in leaks.items():
        for match in leak.matches:
            match.line += offset
        mine = check.leaks.by_item.get(i)
        if mine is None:
            check.leaks.by_item[i] = leak
            continue
        mine.lines += leak.lines
        mine.longest = max(mine.longest, leak.longest)
        mine.matches.extend(leak.matches[: MAX_MATCHES - len(mine.matches)])
