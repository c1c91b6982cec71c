"""Times given on the command line: RFC 3339, or a duration back from a reference time."""

from __future__ import annotations

from datetime import datetime

from monitor.errors import ConfigError
from monitor.times import now_utc, parse_duration, parse_ts


def since_arg(flag: str, text: str | None, anchor: datetime | None = None) -> datetime | None:
    """``--since``: an RFC 3339 time, or a duration (``30m``, ``6h``, ``2d``) back from
    ``anchor`` (default: now). `ConfigError` naming the flag for anything else."""
    if not text:
        return None
    duration = parse_duration(text)
    if duration is not None:
        return (anchor or now_utc()) - duration
    return time_arg(flag, text)


def time_arg(flag: str, text: str | None) -> datetime | None:
    """An RFC 3339 time given as ``flag``; `ConfigError` naming the flag otherwise."""
    if text is None:
        return None
    try:
        return parse_ts(text)
    except ValueError as exc:
        raise ConfigError(
            f"{flag} {text!r}: give an RFC 3339 time or a duration like 30m, 6h, 2d"
        ) from exc
