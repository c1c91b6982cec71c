"""`vigil report`: write the self-contained HTML report (`dashboards.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.config import Settings
from vigil.cli.args import since_arg, time_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="report.html")
    parser.add_argument("--since", help="RFC 3339 time, or a duration back from now (6h, 2d)")
    parser.add_argument("--until", help="RFC 3339 time (default: now)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.report import build_report
    from monitor.store import open_store

    since = since_arg("--since", args.since)
    until = time_arg("--until", args.until)
    store = open_store(settings)
    try:
        report = build_report(store, since, until)
    finally:
        store.close()
    args.out.write_text(report.html, encoding="utf-8")
    print(
        f"wrote {args.out}: {report.sections} sections, {report.charts} of "
        f"{report.chart_slots} charts with data; open it in any browser (no network needed)"
    )
    return 0
