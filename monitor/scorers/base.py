"""The contract every model-backed scorer implements, and the data it exchanges.

A `Scorer` takes a batch of `Job`s and returns one `ScoreResult` per job: scores (stored
in table ``scores``), optional rows for its own tables (``judgments``, ``embeddings``...),
or an error string (stored as a ``failed`` decision with that reason). It never raises
for a single bad item; it raises `VigilError` only when the whole batch cannot run.

Scorers do their own off-loop work: CPU models call ``asyncio.to_thread``; the judge
awaits HTTP. The `Stage` in ``monitor.pipeline.stages`` owns queues, batching and storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from monitor.events import Event


@dataclass(slots=True)
class Job:
    """One event sent to one scorer."""

    event: Event
    failed_checks: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass(slots=True)
class Score:
    """One named number produced by a scorer (e.g. toxicity=0.91, helpfulness=4)."""

    name: str
    value: float
    label: str = ""


@dataclass(slots=True)
class ScoreResult:
    """What a scorer made of one job."""

    event_id: str
    scores: list[Score] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str | None = None
    over_budget: str | None = None
    """Set (to the reason, e.g. ``cost_budget``) when the scorer declined the job for budget:
    recorded as an ``over_budget`` decision, not ``failed``; scores and rows are ignored."""


@runtime_checkable
class Scorer(Protocol):
    """A model-backed scorer plugged into a `Stage`."""

    name: str
    """Scorer name; also the sampling key (judge, toxicity, embedding)."""
    version: str
    """Identity of the scorer's logic and model, stored with every score."""
    batch_size: int
    """Most jobs handed to `score` at once."""
    concurrency: int
    """How many `score` calls the stage runs at once."""

    async def score(self, jobs: list[Job]) -> list[ScoreResult]:
        """Score a batch; one result per job, in any order."""

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary (calls, cache hits, cost...)."""

    async def aclose(self) -> None:
        """Release models, clients and servers."""
