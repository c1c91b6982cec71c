"""Reading drift reports and the `vigil drift` / `vigil baseline` commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from monitor.config import Settings
from monitor.drift_baseline import parse_ts, pin_baseline, read_baselines, unpin_baseline
from monitor.errors import ConfigError
from monitor.store.base import Store

# -- reading reports (CLI, alerts, report) --------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def list_reports(
    store: Store,
    since: datetime | None = None,
    model_version: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Drift reports, newest first; ``top_clusters`` decoded. ``model_version`` '' = pooled."""
    rows = store.query(
        f"SELECT * FROM {store.database}.drift_reports FINAL "
        "WHERE ts >= {since:DateTime64(3)} AND ({any:UInt8} = 1 OR model_version = {v:String}) "
        "ORDER BY ts DESC, model_version LIMIT {limit:UInt32}",
        {
            "since": since or datetime(1970, 1, 1, tzinfo=UTC),
            "any": 1 if model_version is None else 0,
            "v": model_version or "",
            "limit": limit,
        },
    )
    for row in rows:
        row["top_clusters"] = orjson.loads(row["top_clusters"]) if row.get("top_clusters") else []
    return rows


def _resolve_since(store: Store, since: str | None) -> datetime | None:
    """ISO time, or a duration (30m, 2h, 1d) back from the newest report's event time."""
    if not since:
        return None
    match = _DURATION.match(since.strip())
    if match is None:
        try:
            return parse_ts(since)
        except ValueError as exc:
            raise ConfigError(
                f"--since {since!r}: not an ISO time or a duration like 30m, 2h, 1d"
            ) from exc
    rows = store.query(f"SELECT max(ts) AS last, count() AS n FROM {store.database}.drift_reports")
    if not rows or int(rows[0]["n"]) == 0:
        return None
    return parse_ts(rows[0]["last"]) - timedelta(
        seconds=float(match.group(1)) * _UNIT_S[match.group(2)]
    )


def _fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def render_reports(rows: list[dict[str, Any]]) -> str:
    """Human-readable listing for `vigil drift`."""
    if not rows:
        return "no drift reports"
    lines = []
    for r in rows:
        scope = r["model_version"] or "all"
        flag = "DRIFT " + ",".join(r["reasons"]) if r["drifted"] else "ok"
        lines.append(
            f"{str(r['ts'])[:19]}  {scope:<20} {flag:<28} mmd p={_fmt_p(r['mmd_p_value'])} "
            f"psi={r['psi']:.3f} new_topic={r['new_topic_rate']:.1%} "
            f"(base {r['new_topic_base_rate']:.1%}) cos={r['centroid_cosine']:.4f} "
            f"n={r['n_reference']}/{r['n_window']} ({r['reference_kind']})"
        )
        if r["drifted"]:
            for c in r["top_clusters"]:
                judge = ", ".join(
                    f"{name} {v['delta']:+.2f} (n={v['n_reference']}/{v['n_window']})"
                    for name, v in c["judge"].items()
                    if v.get("delta") is not None
                )
                example = c["examples"][0] if c["examples"] else ""
                lines.append(
                    f"    {c['label']:<12} share {c['ref_share']:.1%} -> {c['cur_share']:.1%}"
                    f" (x{c['ratio']:.1f})"
                    + (f"  judge: {judge}" if judge else "")
                    + (f"  e.g. {example[:80]!r}" if example else "")
                )
    return "\n".join(lines)


def run_drift_command(
    settings: Settings,
    as_json: bool = False,
    since: str | None = None,
    model_version: str | None = None,
    limit: int = 100,
) -> int:
    """`vigil drift`: list drift reports (newest first)."""
    from monitor.store import open_store

    store = open_store(settings)
    try:
        store.migrate()
        rows = list_reports(store, _resolve_since(store, since), model_version, limit)
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
    """`vigil baseline pin|show|unpin`."""
    from monitor.store import open_store

    store = open_store(settings)
    try:
        store.migrate()
        if action == "pin":
            baseline = pin_baseline(
                settings.drift,
                store,
                _parse_cli_ts(start, "--from"),
                _parse_cli_ts(end, "--to"),
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


def _parse_cli_ts(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} {value!r}: not an ISO 8601 time") from exc
