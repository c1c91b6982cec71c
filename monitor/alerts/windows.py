"""Which spans of event time a rule looks at: its baseline and its test window at ``as_of``.

- start:   the first ``baseline_minutes`` of the stream (the first stored event onwards)
- pinned:  the span stored under state key ``alerts.baseline``, else the drift job's
           ``drift.baseline``, else as ``start``
- rolling: the ``baseline_minutes`` right before the test window
- others:  the test window itself (the other segments are the baseline)

The test window is the last ``window_minutes`` before ``as_of``, never reaching back into
a fixed baseline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import orjson

from monitor.alerts.rules import Rule
from monitor.errors import ConfigError
from monitor.store.base import Store
from monitor.store.queries import alerts as q
from monitor.times import parse_optional_ts


class Spans(NamedTuple):
    """Where one evaluation of one rule looks: baseline [base_start, base_end), and the test
    window from ``window_start`` to ``as_of``."""

    base_start: datetime
    base_end: datetime
    window_start: datetime


class EventWindows:
    """The spans of every rule; remembers the stream's start once there is one."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stream_start: datetime | None = None

    def stream_start(self) -> datetime | None:
        """Event time of the first stored event; None while the store is empty."""
        if self._stream_start is None:
            self._stream_start = q.first_check_ts(self.store)
        return self._stream_start

    def pinned(self) -> tuple[datetime, datetime] | None:
        # `alerts.baseline` if set, else the span `vigil baseline pin` stored for drift
        # (all versions): one pinned "known good" period serves both jobs.
        values = q.pinned_baselines(self.store)
        key = "alerts.baseline" if "alerts.baseline" in values else "drift.baseline"
        if key not in values:
            return None
        try:
            data = orjson.loads(values[key])
            lo, hi = parse_optional_ts(data["start"]), parse_optional_ts(data["end"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f'state {key} must be JSON {{"start": ..., "end": ...}}') from exc
        return (lo, hi) if lo and hi else None

    def spans(self, rule: Rule, as_of: datetime, start: datetime) -> Spans | None:
        """The spans of ``rule`` at ``as_of``, or None while its baseline is still filling."""
        window = timedelta(minutes=rule.window_minutes)
        base = timedelta(minutes=rule.baseline_minutes)
        if rule.baseline == "rolling":
            b1 = as_of - window
            return Spans(b1 - base, b1, b1)
        if rule.baseline == "others":
            w0 = max(start, as_of - window)
            return Spans(w0, as_of, w0)
        pinned = self.pinned() if rule.baseline == "pinned" else None
        b0, b1 = pinned if pinned else (start, start + base)
        if as_of < b1 + timedelta(minutes=1):
            return None
        return Spans(b0, b1, max(b1, as_of - window))
