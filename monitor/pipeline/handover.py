"""Replay backpressure: scorer jobs a full stage queue cannot take yet.

Live, a full queue refuses a job at once (its decision becomes ``over_budget`` /
``queue_full``) so ingestion never waits on a slow model. A replay has no clock to keep
up with: there a job is never refused. `Pipeline.prepare` is synchronous, so a job the
queue cannot take right now is kept with its prepared batch (`Handover.keep`) and
`Pipeline.commit` awaits room for it (`Handover.hand_over`) before the batch's timers
run. Decisions are made by the sampler alone, so they do not depend on model speed.

Order is kept per stage: once a stage has jobs waiting, later jobs for it wait behind
them (commits run strictly in order) instead of overtaking them through `Stage.offer`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from monitor.pipeline.stages import Stage
from monitor.scorers.base import Job

#: A job kept for a stage, in decision order.
Waiting = tuple[Stage, Job]


class Handover:
    """Jobs waiting for room in their stage's queue, counted per stage."""

    def __init__(self) -> None:
        self._waiting: Counter[str] = Counter()

    def place(self, stage: Stage, job: Job, kept: list[Waiting]) -> None:
        """Queue ``job`` now if its stage has room and nothing waiting; else keep it in
        ``kept`` (the prepared batch's list) for `hand_over`."""
        if self._waiting[stage.name] == 0 and stage.offer(job):
            return
        self._waiting[stage.name] += 1
        kept.append((stage, job))

    async def hand_over(self, kept: Sequence[Waiting]) -> None:
        """Queue each kept job, in order, waiting for room (backpressure)."""
        for stage, job in kept:
            await stage.put(job)
            self._waiting[stage.name] -= 1

    def waiting(self) -> int:
        return sum(self._waiting.values())
