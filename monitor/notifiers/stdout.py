"""Print alert notices to stdout, one readable line each (what `vigil demo` shows)."""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.errors import NotifyError
from monitor.notifiers.base import Notice
from monitor.notifiers.format import format_alert


class StdoutNotifier:
    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, notice: Notice) -> None:
        stream = self._stream or sys.stdout
        try:
            print(format_alert(notice), file=stream, flush=True)
        except (OSError, ValueError) as exc:  # closed pipe or stream
            raise NotifyError(f"cannot write to stdout: {exc}", retryable=False) from exc

    async def close(self) -> None:
        return None
