"""The run's report: ``report.json`` (everything) and ``report.md`` (for people), and the
rows the terminal table shows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import EvalsetError

_RANK = {"skipped": 0, "pass": 1, "warn": 2, "fail": 3}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _interval(est: dict[str, Any] | None) -> str:
    if est is None:
        return "-"
    return f"{_fmt(est['value'])} [{_fmt(est['low'], 2)}, {_fmt(est['high'], 2)}]"


def metric_rows(report: dict[str, Any]) -> list[list[str]]:
    """Metric, n, candidate, baseline, delta (each with its interval), check status, note."""
    status: dict[str, str] = {}
    for check in report["checks"]:  # a metric shows its worst check
        metric = check["name"].split(":")[0]
        if _RANK[check["status"]] >= _RANK.get(status.get(metric, ""), -1):
            status[metric] = check["status"]
    return [
        [m["name"], str(m["candidate"]["n"]) if m["candidate"] else "0",
         _interval(m["candidate"]), _interval(m["baseline"]), _interval(m["delta"]),
         status.get(m["name"], ""), m["note"]]
        for m in report["metrics"]
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def markdown(report: dict[str, Any]) -> str:
    es = report["evalset"]
    judge = report["judge"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        f"# Gate {verdict}: {es['name']}@{es['version']}",
        "",
        f"- run: `{report['run_id']}` ({report['started_at']} .. {report['finished_at']})",
        f"- candidate: `{report['candidate']}`",
        f"- baseline: `{report['baseline']}`",
        f"- judge: `{judge['endpoint']}` rubric `{judge['rubric']}` ({judge['repairs']} "
        f"repair requests, {judge['unparsed']} verdicts unparsed)" if judge["endpoint"]
        else f"- judge: none ({judge['note']})",
        f"- items: {es['items']} (split {es['split']}, content hash `{es['content_hash']}`)",
        f"- thresholds: `{report['thresholds']['path']}`, config hash `{report['config_hash']}`",
        f"- calls: {report['calls']['made']} made, {report['calls']['cached']} from the cache, "
        f"{report['calls']['retries']} retries",
        f"- intervals: {report['intervals']['confidence']:.0%} (Wilson for rates, bootstrap "
        "for means and percentiles)",
        "",
        "## Metrics",
        "",
        *_table(["metric", "n", "candidate", "baseline", "delta", "check", "note"],
                metric_rows(report)),
        "",
        "## Checks",
        "",
    ]
    if report["checks"]:
        lines += _table(["check", "status", "detail"],
                        [[c["name"], c["status"], c["detail"]] for c in report["checks"]])
    else:
        lines.append("No checks: the thresholds file names no metric and no benchmarks ran.")
    if report["benchmarks"]:
        lines += ["", "## Benchmarks (lm-evaluation-harness)", ""]
        lines += _table(
            ["task", "metric", "baseline", "candidate", "drop (points)", "+/- stderr", "status"],
            [[b["task"], b["metric"], _fmt(b["baseline"]), _fmt(b["candidate"]),
              _fmt(b["drop_points"], 2), _fmt(b["stderr_points"], 2), b["status"]]
             for b in report["benchmarks"]],
        )
    if report["notes"]:
        lines += ["", "## Notes", "", *(f"- {n}" for n in report["notes"])]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    """Write both files (each atomically: a temporary file renamed); the JSON's path."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, body in (
            ("report.json", orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"),
            ("report.md", markdown(report).encode()),
        ):
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(body)
            os.replace(tmp, folder / name)
    except OSError as exc:
        raise EvalsetError(f"cannot write the report to {folder}: {exc.strerror}") from exc
    return folder / "report.json"


def trend(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The longitudinal view of stored runs (oldest first): a header (metric, one column
    per run, the change from the first run to the last) and one row per candidate metric."""
    names = sorted({k for run in runs for k in run["metrics"] if ":" not in k})
    header = ["metric", *(f"{r['started_at'][:16]} {r['version']}" for r in runs), "change"]
    rows = []
    for name in names:
        values = [run["metrics"].get(name) for run in runs]
        known = [v for v in values if v is not None]
        change = f"{known[-1] - known[0]:+.3f}" if len(known) > 1 else "-"
        rows.append([name, *(_fmt(v) for v in values), change])
    return header, rows
