"""Event time in one place: parsing, formatting and durations.

Every timestamp Vigil handles is an aware UTC `datetime` inside the library. Text comes
in from three places, and `parse_ts` reads all of them: RFC 3339 from users and events
(``2026-11-22T08:00:00.123Z``), ClickHouse's DateTime64 text from the store
(``2026-11-22 08:00:00.123``, implicitly UTC) and `datetime` values from either.
Text goes out in one shape, `iso`: RFC 3339 with milliseconds and a ``Z`` (the store
keeps milliseconds, so nothing finer is ever meaningful).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_ts(value: Any) -> datetime:
    """``value`` (RFC 3339 text, store text or a datetime) as an aware UTC datetime.

    Text without an offset is UTC (that is how the store writes DateTime64('UTC')).
    Raises ValueError for text that is not a time.
    """
    if isinstance(value, datetime):
        ts = value
    else:
        text = str(value).strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_optional_ts(value: Any) -> datetime | None:
    """`parse_ts`, except that a missing value (None or empty text) is None."""
    if value is None or value == "":
        return None
    return parse_ts(value)


def iso(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-22T08:00:00.123Z``."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def optional_iso(ts: datetime | None) -> str | None:
    """`iso`, with None for a missing time."""
    return iso(ts) if ts is not None else None


def now_utc() -> datetime:
    """The wall clock, aware UTC: for ``created_at``-style columns, never for event time."""
    return datetime.now(UTC)


def now_iso() -> str:
    """`iso` of the wall clock."""
    return iso(now_utc())


def parse_duration(text: str) -> timedelta | None:
    """``30s``, ``30m``, ``6h``, ``2d`` (a number and one unit) as a timedelta; None when
    ``text`` is not a duration (the caller may then try it as a time)."""
    match = _DURATION.match(text.strip())
    if match is None:
        return None
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
