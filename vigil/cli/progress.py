"""Progress bars on stderr for long commands, drawn only when stderr is a terminal.

`ReplayBar` shows a replay's records read of the file, the rate, the time left, events
stored and the scorer queues, then, once the file is read, that the last scorer jobs and
the event-time jobs are finishing. `ProduceBar` shows lines sent of the file and how many
the broker acknowledged. Not a terminal (a pipe, CI, ``--json``): nothing.
"""

from __future__ import annotations

from typing import Any, Self

from monitor.replay import ReplayProgress


class _Bar:
    """A rich progress bar with a rate and a free-text detail column."""

    title = ""

    def __init__(self, enabled: bool = True) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.title, total=None, rate="", detail="")
        return self

    def show(self, done: int, total: int | None, unit: str, detail: str) -> None:
        if self.progress is None:
            return
        speed = self.progress.tasks[0].speed
        self.progress.update(
            self.task,
            completed=done,
            total=total or None,
            rate=f"{speed:,.0f} {unit}/s" if speed else "",
            detail=detail,
        )

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


class ReplayBar(_Bar):
    """``with ReplayBar(enabled) as bar: run_replay(..., on_progress=bar)``."""

    title = "replay"

    def __call__(self, p: ReplayProgress) -> None:
        queues = ", ".join(f"{name} {depth}" for name, depth in p.queues.items() if depth)
        detail = f"stored {p.stored:,}" + (f"; queued: {queues}" if queues else "")
        if p.settling:
            detail += "; finishing scorer and event-time jobs"
        self.show(p.records, p.total, "records", detail)


class ProduceBar(_Bar):
    """``with ProduceBar(total) as bar: produce_file(..., on_progress=bar)``."""

    title = "produce"

    def __init__(self, total: int, enabled: bool = True) -> None:
        super().__init__(enabled)
        self.total = total

    def __call__(self, read: int, delivered: int) -> None:
        self.show(read, self.total, "lines", f"acknowledged {delivered:,}")
