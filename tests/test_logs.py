"""Logs read well on a terminal and parse everywhere else."""

from __future__ import annotations

import io
import logging

import orjson

from monitor.logs import setup_logging


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit(stream: io.StringIO, fmt: str = "auto", level: str = "WARNING") -> list[str]:
    setup_logging(level, fmt, stream)  # type: ignore[arg-type]
    log = logging.getLogger("vigil.test")
    log.info("progress", extra={"read": 10})
    log.warning("store write failed, retrying", extra={"attempt": 1, "delay_s": 0.1})
    return stream.getvalue().splitlines()


def test_json_when_not_a_terminal_and_warnings_only_by_default() -> None:
    lines = _emit(io.StringIO())
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["level"] == "warning" and record["attempt"] == 1
    assert record["msg"] == "store write failed, retrying"


def test_text_on_a_terminal() -> None:
    lines = _emit(_Terminal(), level="INFO")
    assert len(lines) == 2
    assert lines[1].split(" ", 1)[1] == (
        "warning  store write failed, retrying  attempt=1 delay_s=0.1"
    )
    assert "info     progress  read=10" in lines[0]


def test_the_format_asked_wins() -> None:
    assert orjson.loads(_emit(_Terminal(), fmt="json")[0])["level"] == "warning"
    assert _emit(io.StringIO(), fmt="text")[0].endswith("attempt=1 delay_s=0.1")
