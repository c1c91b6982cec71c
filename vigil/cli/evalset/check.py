"""`vigil evalset check NAME[@VERSION] --against TRAIN...`: leakage into training data.

Exit status: 0 when the share of flagged items is at most ``--max-leak-rate``
(``leakage.max_leak_rate``), 1 above it, 2 when the check could not run (a missing
file, a bad eval set: printed as ``vigil: error: ...``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config import Settings
from monitor.errors import ConfigError, EvalsetError

if TYPE_CHECKING:
    from monitor.evalset.leakage import LeakageReport, Progress
    from monitor.evalset.training import Source

HELP = {"check": "test an eval set for leakage into training data (13-gram overlap)"}

#: Bad lines and items printed in the terminal report (--json has them all).
SHOW_BAD = 10
SHOW_ITEMS = 50


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("evalset", metavar="NAME[@VERSION]", help="the eval set (default: latest)")
    parser.add_argument(
        "--against",
        nargs="+",
        required=True,
        metavar="TRAIN",
        help="training data: JSON Lines files (.jsonl or .jsonl.gz; messages, prompt/"
        "completion, instruction/input/output or text per line), or eval sets as NAME@VERSION",
    )
    parser.add_argument(
        "--field", help="read only this field of each training line (text, or a messages list)"
    )
    parser.add_argument(
        "--max-leak-rate",
        type=float,
        metavar="R",
        help="exit 1 when the share of flagged items is above R (default: leakage.max_leak_rate)",
    )
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="also find embedding near-duplicates (MiniLM; slow: on a CPU, ~10,000 training "
        "lines at most)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _sources(args: argparse.Namespace, root: Path) -> list[Source]:
    from monitor.evalset.training import EvalsetSource, JsonlSource
    from monitor.evalset.versions import load

    sources: list[Source] = []
    for text in args.against:
        path = Path(text)
        if path.exists() or "@" not in text:
            sources.append(JsonlSource(path, args.field))  # EvalsetError when missing
            continue
        try:
            other = load(root, text)
        except EvalsetError as exc:
            raise EvalsetError(f"--against {text}: no such file, nor an eval set ({exc})") from exc
        sources.append(EvalsetSource(f"{other.name}@{other.version}", other.items))
    return sources


class _Bar:
    """A rich progress bar on stderr (only on a terminal): lines, lines/s, ETA by bytes."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskID,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[lines]:>12,} lines  {task.fields[rate]:>9,.0f} lines/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.tasks: dict[str, tuple[TaskID, float]] = {}

    def __call__(self, task: str, done: int, total: int | None, unit: str, lines: int) -> None:
        if task not in self.tasks:
            self.tasks[task] = (
                self.progress.add_task(task, total=total, lines=0, rate=0.0),
                time.perf_counter(),
            )
        task_id, started = self.tasks[task]
        elapsed = time.perf_counter() - started
        rate = lines / elapsed if elapsed > 0 else 0.0
        self.progress.update(task_id, completed=done, lines=lines, rate=rate)


def run(name: str, args: argparse.Namespace, settings: Settings) -> int:
    from monitor.evalset.leakage import check_leakage
    from monitor.evalset.leakage_parallel import workers_for
    from monitor.evalset.versions import load

    leakage = settings.evalset.leakage
    max_rate = leakage.max_leak_rate if args.max_leak_rate is None else args.max_leak_rate
    if not 0.0 <= max_rate <= 1.0:
        raise ConfigError(f"--max-leak-rate {max_rate}: a share between 0 and 1")
    evalset = load(settings.evalset_dir, args.evalset)
    if not evalset.items:
        raise EvalsetError(f"{evalset.name}@{evalset.version} has no items")
    sources = _sources(args, settings.evalset_dir)
    embeddings = None
    if args.embeddings:
        from monitor.evalset.leakage_embed import NearDuplicates, load_embedder

        embeddings = NearDuplicates(
            load_embedder(settings.embedding), leakage.embedding_cosine, leakage.embedding_chunk
        )
    bar = _Bar() if sys.stderr.isatty() else None
    progress: Progress | None = bar
    if bar is not None:
        bar.progress.start()
    try:
        report = check_leakage(
            f"{evalset.name}@{evalset.version}",
            evalset.items,
            sources,
            n=leakage.ngram,
            max_leak_rate=max_rate,
            progress=progress,
            embeddings=embeddings,
            embedding_cosine=leakage.embedding_cosine if args.embeddings else None,
            workers=workers_for(leakage.workers),
            parallel_min_bytes=int(leakage.parallel_min_mb * 2**20),
        )
    finally:
        if bar is not None:
            bar.progress.stop()
    if args.json:
        import msgspec

        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        _print(report)
    return 0 if report.passed else 1


def _print(report: LeakageReport) -> None:
    from rich.console import Console

    # soft_wrap: one line per bad line and per total, whatever the width (grep-able);
    # piped, the tables get 160 columns rather than rich's 80.
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    for bad in report.bad_lines[:SHOW_BAD]:
        console.print(f"skipped {bad.source}:{bad.line}: {bad.reason}", markup=False)
    if report.skipped > SHOW_BAD:
        console.print(f"... {report.skipped - SHOW_BAD} more bad lines skipped (--json lists 100)")
    if report.leaks:
        # The shared words only when there is room: rich would squeeze the other columns.
        wide = console.width >= 110
        table = _table(f"n-gram overlap ({report.ngram} words or more)", "longest", "n-grams")
        if wide:
            table.add_column("shared words", no_wrap=True, overflow="ellipsis", max_width=60)
        for leak in report.leaks[:SHOW_ITEMS]:
            first = leak.matches[0]
            table.add_row(
                leak.item_id, leak.split, _lines(leak.matches, leak.lines),
                str(leak.lines), str(leak.longest), str(first.shared_ngrams),
                *([first.span] if wide else []),
            )  # fmt: skip
        console.print(table)
    if report.near:
        table = _table(f"embedding near-duplicates (cosine >= {report.embedding_cosine})", "cosine")
        for near in report.near[:SHOW_ITEMS]:
            best = near.matches[0]
            table.add_row(
                near.item_id, near.split, _where(best.source, best.line, best.other_id),
                str(near.lines), f"{near.best:.3f}",
            )  # fmt: skip
        console.print(table)
    if len(report.leaks) > SHOW_ITEMS or len(report.near) > SHOW_ITEMS:
        console.print(f"(the first {SHOW_ITEMS} items of each kind; --json lists them all)")
    _summary(console, report)


def _table(title: str, *numbers: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("item", no_wrap=True, min_width=16)
    table.add_column("split", no_wrap=True, min_width=5)
    table.add_column("found in", no_wrap=True, overflow="ellipsis", max_width=40)
    for column in ("lines", *numbers):
        table.add_column(column, no_wrap=True, justify="right", min_width=len(column))
    return table


def _lines(matches: list[Any], total: int) -> str:
    """The first few ``file:line,line`` of an item's matches, and how many more."""
    shown: dict[str, list[str]] = {}
    for match in matches[:4]:
        where = _where(match.source, match.line, match.other_id)
        name, _, line = where.partition(":")
        shown.setdefault(name, []).append(line)
    text = " ".join(f"{name}:{','.join(lines)}" for name, lines in shown.items())
    more = total - min(len(matches), 4)
    return text + (f" +{more}" if more > 0 else "")


def _where(source: str, line: int, other_id: str) -> str:
    """``file:line`` (the file's name: --json has the whole path), or the other item."""
    name = source if "@" in source and not Path(source).exists() else Path(source).name
    return f"{name}:{line}" + (f" ({other_id})" if other_id else "")


def _summary(console: Any, report: LeakageReport) -> None:
    near = "" if report.near_duplicates is None else f", {report.near_duplicates} near-duplicates"
    short = f" ({report.too_short} shorter than {report.ngram} words)" if report.too_short else ""
    console.print(
        f"{report.evalset}: {report.items} items checked{short} against {report.lines:,} "
        f"lines ({report.skipped} skipped, {report.lines_per_s:,.0f} lines/s): "
        f"{report.contaminated} contaminated{near}; rate {report.rate:.2%}",
        markup=False,
    )
    verdict = "PASS" if report.passed else "FAIL"
    op = "<=" if report.passed else ">"
    console.print(f"{verdict}: leak rate {report.rate:.2%} {op} max {report.max_leak_rate:.2%}")
