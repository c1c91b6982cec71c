"""Grafana ClickHouse datasource macros, expanded as the plugin expands them.

The panels' SQL is written for `grafana-clickhouse-datasource`, which replaces these
macros server-side before the query reaches ClickHouse. Tests (and the HTML report) run
the same SQL against Vigil's store, so they need the same expansion; this module is it,
following the plugin's documented forms:

- ``$__timeFilter(col)``    -> ``col >= toDateTime(FROM_S) AND col <= toDateTime(TO_S)``
- ``$__timeFilter_ms(col)`` -> ``col >= fromUnixTimestamp64Milli(FROM_MS) AND col <=
  fromUnixTimestamp64Milli(TO_MS)``
- ``$__dateFilter(col)``    -> ``col >= toDate('YYYY-MM-DD') AND col <= toDate('...')``
- ``$__fromTime`` / ``$__toTime``       -> ``toDateTime(S)``
- ``$__fromTime_ms`` / ``$__toTime_ms`` -> ``fromUnixTimestamp64Milli(MS)``
- ``$__timeInterval(col)``  -> ``toStartOfInterval(toDateTime(col), INTERVAL S second)``
- ``$__timeInterval_ms(col)`` -> ``toStartOfInterval(toDateTime64(col, 3), INTERVAL MS
  millisecond)``
- ``$__interval_s``         -> the panel's interval in whole seconds (at least 1)

Function macros are matched before the bare ones, so ``$__timeFilter_ms`` never reads as
``$__timeFilter`` followed by ``_ms``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class TimeRange:
    """A dashboard's time range and the panel interval Grafana would pick for it."""

    start: datetime
    end: datetime
    interval_s: float = 60.0

    def _s(self, t: datetime) -> int:
        return int(t.astimezone(UTC).timestamp())

    def _ms(self, t: datetime) -> int:
        return round(t.astimezone(UTC).timestamp() * 1000)


def _functions(tr: TimeRange) -> dict[str, str]:
    step_s = max(1, int(tr.interval_s))
    step_ms = max(1, int(tr.interval_s * 1000))
    s0, s1, ms0, ms1 = tr._s(tr.start), tr._s(tr.end), tr._ms(tr.start), tr._ms(tr.end)
    d0, d1 = tr.start.astimezone(UTC).date(), tr.end.astimezone(UTC).date()
    return {
        "timeFilter_ms": (
            f"{{c}} >= fromUnixTimestamp64Milli({ms0}) AND {{c}} <= fromUnixTimestamp64Milli({ms1})"
        ),
        "timeFilter": f"{{c}} >= toDateTime({s0}) AND {{c}} <= toDateTime({s1})",
        "dateFilter": f"{{c}} >= toDate('{d0}') AND {{c}} <= toDate('{d1}')",
        "timeInterval_ms": (
            f"toStartOfInterval(toDateTime64({{c}}, 3), INTERVAL {step_ms} millisecond)"
        ),
        "timeInterval": f"toStartOfInterval(toDateTime({{c}}), INTERVAL {step_s} second)",
    }


_FUNCTION = re.compile(r"\$__(timeFilter_ms|timeFilter|dateFilter|timeInterval_ms|timeInterval)"
                       r"\(\s*([^()]+?)\s*\)")  # fmt: skip
_BARE = re.compile(r"\$__(fromTime_ms|toTime_ms|fromTime|toTime|interval_s)\b")


def expand(sql: str, tr: TimeRange) -> str:
    """``sql`` with every supported macro replaced for ``tr``; others are left as written."""
    forms = _functions(tr)
    out = _FUNCTION.sub(lambda m: forms[m.group(1)].replace("{c}", m.group(2)), sql)
    bare = {
        "fromTime_ms": f"fromUnixTimestamp64Milli({tr._ms(tr.start)})",
        "toTime_ms": f"fromUnixTimestamp64Milli({tr._ms(tr.end)})",
        "fromTime": f"toDateTime({tr._s(tr.start)})",
        "toTime": f"toDateTime({tr._s(tr.end)})",
        "interval_s": str(max(1, int(tr.interval_s))),
    }
    return _BARE.sub(lambda m: bare[m.group(1)], out)


def unexpanded(sql: str) -> list[str]:
    """Grafana macros still in ``sql`` (``$__name``), so a test can refuse unknown ones."""
    return re.findall(r"\$__\w+", sql)
