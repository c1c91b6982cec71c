"""`vigil drift` (the drift reports) and `vigil baseline pin|show|unpin`."""

from __future__ import annotations

from typing import Any

import orjson

from monitor.config import Settings
from monitor.drift.baseline import pin_baseline, read_baselines, unpin_baseline
from monitor.drift.reports import latest_report_ts, list_reports, render_reports
from monitor.store import open_store
from vigil.cli.args import since_arg, time_arg


def run_drift_command(
    settings: Settings,
    as_json: bool = False,
    since: str | None = None,
    model_version: str | None = None,
    limit: int = 100,
) -> int:
    """List drift reports, newest first; a ``since`` duration counts back from the newest."""
    store = open_store(settings)
    try:
        store.migrate()
        start = since_arg("--since", since, latest_report_ts(store))
        rows = list_reports(store, start, model_version, limit)
    finally:
        store.close()
    if as_json:
        print(orjson.dumps(rows).decode())
    else:
        print(render_reports(rows))
    return 0


def run_baseline_command(
    settings: Settings,
    action: str,
    start: str | None = None,
    end: str | None = None,
    model_version: str = "",
    as_json: bool = False,
) -> int:
    """Pin a span of prompt embeddings as the drift reference, list pins, or drop one."""
    store = open_store(settings)
    try:
        store.migrate()
        if action == "pin":
            baseline = pin_baseline(
                settings.drift,
                store,
                time_arg("--from", start),
                time_arg("--to", end),
                model_version,
            )
            data: Any = baseline.as_dict()
            text = (
                f"pinned drift baseline {data['start']} .. {data['end']} "
                f"({data['n']} prompt embeddings, {data['model_version'] or 'all versions'})"
            )
        elif action == "unpin":
            removed = unpin_baseline(store, model_version)
            data = {"unpinned": removed, "model_version": model_version}
            text = "baseline removed" if removed else "no baseline pinned"
        else:
            data = [b.as_dict() for _, b in sorted(read_baselines(store).items())]
            text = (
                "\n".join(
                    f"{b['model_version'] or 'all':<20} {b['start']} .. {b['end']}  n={b['n']}"
                    for b in data
                )
                or "no baseline pinned (the drift job uses a rolling reference)"
            )
    finally:
        store.close()
    print(orjson.dumps(data).decode() if as_json else text)
    return 0
