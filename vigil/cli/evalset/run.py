"""`vigil evalset run` (the regression gate) and `vigil evalset runs` (its trend)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from monitor.config import Settings

HELP = {
    "run": "the regression gate: a candidate model against a baseline on an eval set",
    "runs": "past gate runs and each metric's trend across them",
}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "runs":
        parser.add_argument("name", nargs="?", help="eval-set name (default: every eval set)")
        parser.add_argument("--last", type=int, default=10, help="most recent runs shown")
        parser.add_argument("--json", action="store_true", help="print the runs as JSON")
        return
    parser.add_argument("ref", metavar="NAME[@VERSION]", help="eval set (default: latest)")
    parser.add_argument("--candidate", required=True, metavar="URL[#model]",
                        help="OpenAI-compatible base URL of the model under test")
    parser.add_argument("--baseline", required=True, metavar="URL[#model]",
                        help="the model it must not fall behind")
    parser.add_argument("--judge", metavar="URL[#model]",
                        help="judge endpoint (rubric scores, pairwise); without: skipped")
    parser.add_argument("--rubric", help="rubric name or YAML path (default: judge.rubric)")
    parser.add_argument("--thresholds", required=True, type=Path, metavar="gate.yaml",
                        help="the checks the candidate must pass")
    parser.add_argument("--benchmarks", nargs=2, type=Path, metavar=("BASE.json", "CAND.json"),
                        help="lm-evaluation-harness results of baseline and candidate")
    parser.add_argument("--split", default="test", choices=["test", "dev", "all"],
                        help="items of this split (default: test)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    parser.add_argument("--max-tokens", type=int, metavar="N",
                        help="most tokens per answer (default: evalset.gate.max_tokens)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="report folder (default: <evalset.dir>/<name>/runs/<run_id>)")
    parser.add_argument("--json", action="store_true", help="print report.json to stdout")


class _RichProgress:
    """One progress bar per stage, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        console = Console(stderr=True)
        self._bar = Progress("[progress.description]{task.description}", BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                             disable=not console.is_terminal)
        self._tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int) -> None:
        self._tasks[stage] = self._bar.add_task(stage, total=total)

    def advance(self, stage: str) -> None:
        self._bar.advance(self._tasks[stage])

    def __enter__(self) -> _RichProgress:
        self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.stop()


def _gate(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from monitor.errors import ConfigError
    from monitor.evalset.gate import GateRequest, execute, prepare
    from monitor.evalset.gate.report import metric_rows
    from monitor.store import open_store

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit: give a positive number of items")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError("--max-tokens: give a positive number")
    request = GateRequest(
        evalset=args.ref, candidate=args.candidate, baseline=args.baseline,
        thresholds=args.thresholds, judge=args.judge, rubric=args.rubric,
        benchmarks=tuple(args.benchmarks) if args.benchmarks else None, split=args.split,
        out=args.out, limit=args.limit, max_tokens=args.max_tokens,
    )
    plan = prepare(request, settings)  # thresholds and inputs checked before any call
    store = open_store(settings)
    try:
        store.migrate()
        with _RichProgress() as progress:
            result = execute(plan, store, progress)
    finally:
        store.close()
    report = result.report
    console = Console(stderr=args.json)
    table = Table(title=f"{report['evalset']['name']}@{report['evalset']['version']}: "
                        f"{report['candidate']} vs {report['baseline']}")
    table.add_column("metric", no_wrap=True)
    for column in ("n", "candidate", "baseline", "delta (cand - base)", "check"):
        table.add_column(column)
    for row in metric_rows(report):
        table.add_row(*row[:-1])  # notes are in report.md
    console.print(table)
    for check in report["checks"]:
        if check["status"] in ("fail", "warn"):
            console.print(f"{check['status'].upper()} {check['name']}: {check['detail']}")
    verdict = "PASSED" if result.passed else "FAILED"
    console.print(f"gate {verdict}; report: {result.report_path}")
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    return result.exit_code


def _model(label: str) -> str:
    """A model's name (``URL#model``: the part after ``#``); the full label is in --json."""
    return label.rpartition("#")[2] or label


def _runs(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from monitor.evalset.gate.report import trend
    from monitor.store import open_store
    from monitor.store.queries.eval_runs import list_runs

    store = open_store(settings)
    try:
        store.migrate()
        runs = list_runs(store, args.name, max(1, args.last))
    finally:
        store.close()
    if args.json:
        print(orjson.dumps(runs).decode())
        return 0
    console = Console()
    if not runs:
        console.print("no gate runs stored" + (f" for {args.name}" if args.name else ""))
        return 0
    for name in sorted({r["evalset"] for r in runs}):
        mine = [r for r in runs if r["evalset"] == name]
        listing = Table(title=f"{name}: gate runs")
        for column in ("started", "run", "version", "candidate", "baseline", "result"):
            listing.add_column(column)
        for r in mine:
            result = "pass" if r["passed"] else "FAIL " + ", ".join(r["failed_checks"])
            listing.add_row(r["started_at"][:19], r["run_id"], r["version"],
                            _model(r["candidate"]), _model(r["baseline"]), result)
        console.print(listing)
        header, rows = trend(mine)
        table = Table(title=f"{name}: candidate metrics, oldest run first")
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    return 0


def run(name: str, args: argparse.Namespace, settings: Settings) -> int:
    return _runs(args, settings) if name == "runs" else _gate(args, settings)
