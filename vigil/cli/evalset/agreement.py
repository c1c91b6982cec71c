"""`vigil evalset agreement NAME[@VERSION]`: how well the judge agrees with the human
labels, per rubric dimension; the figures are stored in ``judge_agreement``."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

import orjson

from monitor.config import Settings
from monitor.errors import EvalsetError

if TYPE_CHECKING:
    from monitor.evalset.agreement_report import Report

HELP = {"agreement": "judge against human labels: kappa, Spearman, confusion, per dimension"}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="NAME[@VERSION]", help="eval set (default: latest version)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--threshold",
        type=float,
        help="the judge passes an item at this mean score or above (default 3.5)",
    )
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def run(name: str, args: argparse.Namespace, settings: Settings) -> int:
    from monitor.evalset.agreement import PASS_THRESHOLD
    from monitor.evalset.agreement_report import build_report, judge_views, save_report
    from monitor.evalset.labels import LabelBook
    from monitor.evalset.versions import load
    from monitor.store import open_store

    threshold = PASS_THRESHOLD if args.threshold is None else args.threshold
    if not 1.0 <= threshold <= 5.0:
        raise EvalsetError(f"--threshold {args.threshold}: the judge's scores run from 1 to 5")
    if args.resamples < 100:
        raise EvalsetError(f"--resamples {args.resamples}: use at least 100")
    evalset = load(settings.evalset_dir, args.ref)
    store = open_store(settings)
    try:
        store.migrate()
        ids = {item.id for item in evalset.items}
        book = LabelBook(store, evalset.name, evalset.version)
        labels = [lb for lb in book.current().values() if lb.item_id in ids and lb.judged]
        views = judge_views(store, evalset.items)
        report = build_report(
            evalset.name,
            evalset.version,
            views,
            labels,
            threshold=threshold,
            resamples=args.resamples,
            seed=args.seed,
        )
        if not report.results:
            raise EvalsetError(
                f"no item of {evalset.name}@{evalset.version} has both a judge score and a "
                f"human label ({len(labels)} labelled, {len(views)} judged): label some with "
                f"`vigil evalset review {evalset.name}`"
            )
        save_report(store, report)
    finally:
        store.close()
    if args.json:
        print(orjson.dumps(as_json(report), option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(report)
    return 0


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def as_json(report: Report) -> dict[str, Any]:
    return {
        "evalset": report.evalset,
        "version": report.version,
        "threshold": report.threshold,
        "measured_at": report.measured_at,
        "reviewers": report.reviewers,
        "dimensions": [
            {
                "dimension": a.dimension,
                "judge_version": judge_version,
                "kind": a.kind,
                "n": a.n,
                "kappa": _num(a.kappa),
                "kappa_low": _num(a.kappa_low),
                "kappa_high": _num(a.kappa_high),
                "spearman": _num(a.spearman),
                "labels": a.labels,
                "confusion": a.confusion,
                "warnings": a.warnings,
            }
            for judge_version, a in report.results
        ],
        "inter_reviewer": [
            {"a": r.a, "b": r.b, "dimension": r.dimension, "n": r.n, "kappa": _num(r.kappa)}
            for r in report.inter
        ],
    }


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120  # piped or captured: no terminal width to fit, and no wrapping
    console.print(
        f"judge vs human on {report.evalset}@{report.version} "
        f"(reviewers: {', '.join(report.reviewers)}; judge passes at >= {report.threshold:g})"
    )
    table = Table("dimension", "judge", "kappa kind", "n", "kappa", "95% interval", "spearman")
    for judge_version, a in report.results:
        table.add_row(
            a.dimension,
            judge_version or "item scores",
            a.kind,
            str(a.n),
            _fmt(a.kappa),
            f"[{_fmt(a.kappa_low)}, {_fmt(a.kappa_high)}]",
            _fmt(a.spearman),
        )
    console.print(table)
    for _, a in report.results:
        console.print(f"{a.dimension}: judge (rows) against human (columns)")
        confusion = Table()
        confusion.add_column("judge \\ human")
        for label in a.labels:
            confusion.add_column(label, justify="right")
        for label, counts in zip(a.labels, a.confusion, strict=True):
            confusion.add_row(label, *(str(c) for c in counts))
        console.print(confusion)
    if report.inter:
        inter = Table("reviewers", "dimension", "n", "kappa", title="between reviewers")
        for r in report.inter:
            inter.add_row(f"{r.a} / {r.b}", r.dimension, str(r.n), _fmt(r.kappa))
        console.print(inter)
    for _, a in report.results:
        for warning in a.warnings:
            console.print(f"warning: {warning}", markup=False)
