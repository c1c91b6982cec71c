"""Logs on stderr: one readable line per record on a terminal, one JSON object per line
otherwise (or when asked), so people read them and log collectors parse them.

Fields passed with ``extra=`` become keys (JSON) or ``key=value`` pairs (text). Raw user
text never goes into a log at INFO: log ids, counts and reasons, not prompts or responses.
Credentials inside URLs (``scheme://user:pass@host``) are masked in the message and in
every string field by both formatters (`mask_urls`), whoever logged them (httpx included).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["auto", "json", "text"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
#: Libraries that log at INFO about their own business; ours stay at the level asked.
_CHATTY = ("aiokafka", "faust", "mode", "kafka", "httpx", "sentence_transformers")
#: The store's HTTP client stack warns on every failed connection; the store writer
#: already says the store is down and that it retries (one line, then every tenth).
_RETRIED_BY_US = ("urllib3", "clickhouse_connect")


USERINFO_MASK = "***"
# scheme://userinfo@ where userinfo has no '/', '@', '?', '#' or whitespace (RFC 3986).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s?#]+@")


def mask_urls(text: str) -> str:
    """``text`` with the ``user[:password]`` of every ``scheme://user:pass@`` URL in it
    replaced by ``***`` (the one function `vigil config show` and the logs use)."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{USERINFO_MASK}@", text)


def _masked(value: Any) -> Any:
    return mask_urls(value) if isinstance(value, str) else value


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: _masked(v) for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_urls(record.getMessage()),
        }
        data.update(_extra(record))
        if record.exc_info and record.levelno >= logging.ERROR:
            data["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return orjson.dumps(data, default=str).decode()


class TextFormatter(logging.Formatter):
    """``12:00:01 warning  store write failed, retrying  attempt=1 delay_s=0.1``"""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        pairs = " ".join(f"{k}={_short(v)}" for k, v in _extra(record).items())
        line = f"{when} {record.levelname.lower():<8} {mask_urls(record.getMessage())}"
        if pairs:
            line += "  " + pairs
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "  exc=" + self.formatException(record.exc_info).splitlines()[-1]
        return line


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 200 else text[:197] + "..."


def setup_logging(
    level: str = "WARNING", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Send logs at ``level`` and above to ``stream`` (stderr): text on a terminal, JSON
    when it is not one (``auto``), or the format asked."""
    out = stream or sys.stderr
    text = fmt == "text" or (fmt == "auto" and out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    for name in _RETRIED_BY_US:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.ERROR)
