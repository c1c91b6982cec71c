"""`vigil evalset export --name NAME`: the next immutable version from captured failures.

Exit status: 0 when a version was written; 1 when the window holds no captured failures
(nothing is written: an empty version would only shadow the last useful one); 2 for bad
options or a store error (``vigil: error: ...``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from monitor.config import Settings
from monitor.errors import ConfigError

HELP = {"export": "export captured failures as the next version of an eval set"}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return value


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the eval set (letters, digits, _ . -)")
    parser.add_argument(
        "--since",
        metavar="T",
        help="RFC 3339 time, or a duration (30m, 6h, 2d) before the newest failure",
    )
    parser.add_argument("--until", metavar="T", help="RFC 3339 time (exclusive)")
    parser.add_argument("--reasons", metavar="A,B", help="only failures with these reasons")
    parser.add_argument("--max", type=_positive, metavar="N", help="most items (export.max_items)")
    parser.add_argument(
        "--per-reason",
        type=_positive,
        metavar="N",
        help="most items per reason (export.per_reason)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="eval-set directory (evalset.dir)")
    parser.add_argument(
        "--format", choices=("jsonl", "parquet"), help="items file format (export.format)"
    )
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


class _Bar:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bar:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def run(name: str, args: argparse.Namespace, settings: Settings) -> int:
    from monitor.evalset.export import NothingToExport, export_evalset
    from monitor.store import open_store
    from monitor.store.queries.failures import latest_failure_ts
    from vigil.cli.args import since_arg, time_arg

    reasons = [r.strip() for r in (args.reasons or "").split(",") if r.strip()]
    if args.reasons is not None and not reasons:
        raise ConfigError("--reasons: give one or more reasons, comma-separated")
    store = open_store(settings)
    try:
        store.migrate()
        since = since_arg("--since", args.since, latest_failure_ts(store)) if args.since else None
        until = time_arg("--until", args.until)
        with _Bar() as bar:
            manifest = export_evalset(
                settings,
                store,
                args.name,
                since=since,
                until=until,
                reasons=reasons or None,
                max_items=args.max,
                per_reason=args.per_reason,
                out=args.out,
                fmt=args.format,
                progress=bar,
            )
    except NothingToExport as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        sys.stdout.write(orjson.dumps(manifest).decode() + "\n")
    else:
        _summary(manifest)
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _summary(m: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    for line in summary_lines(m):
        console.print(line, markup=False, soft_wrap=True)


def summary_lines(m: dict[str, Any]) -> list[str]:
    """What an export made, from its manifest: a few lines for a terminal."""
    split = m["counts"]["split"]
    source = m["source"]
    pii = m["pii"]["replaced"]
    lines = [
        f"exported {m['name']}@{m['version']}: {m['items']} items "
        f"({split.get('test', 0)} test, {split.get('dev', 0)} dev) to {m['path']}",
        f"  by reason      {_counts(m['counts']['reason'])}",
        f"  from           {source['failures']} failures on {source['events']} events, "
        f"{source['first_event']} .. {source['last_event']}",
        f"  duplicates     {m['dedupe']['exact']} exact, {m['dedupe']['near']} near (folded in)",
        f"  PII replaced   {_counts(pii) if pii else 'none'}",
    ]
    if m["selection"]["left_out"]:
        lines.append(f"  left out       {m['selection']['left_out']} by --max / --per-reason")
    if m["parent"]:
        p = m["parent"]
        lines.append(
            f"  vs {p['version']:<11} +{len(p['added'])} added, -{len(p['removed'])} removed"
        )
    return lines
