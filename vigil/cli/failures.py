"""`vigil failures`: the production failures the capture rules caught, newest first.

``--since`` takes an RFC 3339 time or a duration counted back from the newest captured
failure (event time, like the rest of Vigil: a replay of last month's traffic is listed
the same way as live traffic).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from monitor.config import Settings
from monitor.errors import ConfigError

_SHOW_DETAIL = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", action="append", metavar="R", help="only this reason (repeatable)"
    )
    parser.add_argument(
        "--since",
        metavar="T",
        help="RFC 3339 time, or a duration (30m, 6h, 2d) before the newest failure",
    )
    parser.add_argument("--model-version", metavar="V", help="only this model version")
    parser.add_argument("--limit", type=int, default=100, metavar="N", help="most rows (100)")
    parser.add_argument("--json", action="store_true", help="print the failures as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store import open_store
    from monitor.store.queries.failures import latest_failure_ts, list_failures
    from monitor.times import iso, parse_ts
    from vigil.cli.args import since_arg

    if args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: give 1 or more")
    reasons = [r for text in args.reason or [] for r in text.split(",") if r]
    store = open_store(settings)
    try:
        store.migrate()
        since = since_arg("--since", args.since, latest_failure_ts(store)) if args.since else None
        rows = list_failures(
            store,
            reasons=reasons or None,
            since=since,
            model_version=args.model_version,
            limit=args.limit,
        )
    finally:
        store.close()
    for row in rows:
        row["ts"] = iso(parse_ts(row["ts"]))
    if args.json:
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
    else:
        _print(rows)
    return 0


def _print(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one line per row, for grep and less
        console = Console(highlight=False, width=200)
    if not rows:
        console.print(
            "no captured failures (capture runs with `vigil replay` and the worker)", soft_wrap=True
        )
        return
    table = Table(title=f"{len(rows)} failures, newest first")
    for column in ("time", "reason", "detail", "route", "model version", "event", "alert"):
        table.add_column(column, overflow="fold")
    for row in rows:
        detail = row["detail"]
        detail = detail if len(detail) <= _SHOW_DETAIL else detail[: _SHOW_DETAIL - 3] + "..."
        table.add_row(
            row["ts"], row["reason"], Text(detail), Text(row["route"]), row["model_version"],
            row["event_id"], row["alert_id"],
        )  # fmt: skip
    console.print(table)
