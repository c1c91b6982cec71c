"""The contract every model-backed scorer implements, and the data it exchanges.

A `Scorer` takes a batch of `Job`s and returns one `ScoreResult` per job: scores, typed
outputs (`Embedding`, `RiskIncident`, `Judgment`), or an error string. It never raises
for a single bad item; it raises `VigilError` only when the whole batch cannot run.

Scorers return, the pipeline writes: the `Stage` in ``monitor.pipeline.stages`` owns
queues, batching and storage, and ``monitor.pipeline.rows`` maps a result to table rows
(scores to ``scores``, the typed outputs to ``embeddings``, ``incidents`` and
``judgments``, an error to a ``failed`` decision with that reason). So a scorer knows
nothing of tables, the store or the pipeline.

Scorers do their own off-loop work: CPU models call ``asyncio.to_thread``; the judge
awaits HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from monitor.events import Event

if TYPE_CHECKING:
    import numpy as np


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


@dataclass(frozen=True, slots=True)
class Embedding:
    """One embedded text of the event, for the drift job."""

    kind: str
    """What was embedded: ``prompt`` or ``response``."""
    embedder: str
    """Name of the model, so vectors of different models are never compared."""
    vector: np.ndarray
    """L2-normalised float32 vector."""


@dataclass(frozen=True, slots=True)
class RiskIncident:
    """A risk the scorer found in the event (the scorer's name is its source)."""

    risk_type: str
    """``toxicity``, ``jailbreak``..."""
    category: str
    """The scorer's own class of the risk (a toxicity category, ``similarity``)."""
    score: float
    """The value that reached the scorer's threshold."""


@dataclass(frozen=True, slots=True)
class Judgment:
    """One judge verdict with everything needed to audit and re-issue it."""

    judge_version: str
    cache_key: str
    """Content + judge identity hash: a later verdict with the same key is the same one."""
    judge_model: str
    """The model whose verdict this is (the strong one when the cascade escalated)."""
    rubric: str
    rubric_version: str
    template_hash: str
    mode: str
    """``pointwise``, or ``pointwise+pairwise`` when the event's shadow was compared."""
    cascade: str
    """How the cascade went (single, cheap, strong, strong_failed), per verdict part."""
    scores: dict[str, float]
    reasons: dict[str, str]
    overall: float
    pair_winner: str
    pair_orders: tuple[str, ...]
    pair_reasons: tuple[str, ...]
    shadow_model: str
    cached: bool
    """True when re-issued from the verdict cache; then nothing was called or paid."""
    calls: int
    repaired: bool
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_ms: float


@dataclass(slots=True)
class ScoreResult:
    """What a scorer made of one job."""

    event_id: str
    scores: list[Score] = field(default_factory=list)
    embeddings: list[Embedding] = field(default_factory=list)
    incidents: list[RiskIncident] = field(default_factory=list)
    judgment: Judgment | None = None
    error: str | None = None
    over_budget: str | None = None
    """Set (to the reason, e.g. ``cost_budget``) when the scorer declined the job for budget:
    recorded as an ``over_budget`` decision, not ``failed``; everything else is ignored."""


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
