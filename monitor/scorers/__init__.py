"""Model-backed scorers: the contract (`Scorer`) and what they return.

The scorers themselves live in ``monitor.scorers.toxicity``, ``monitor.scorers.judge`` and
``monitor.scorers.embeddings``; ``monitor.assembly`` picks the enabled ones.
"""

from monitor.scorers.base import (
    Embedding,
    Job,
    Judgment,
    RiskIncident,
    Score,
    Scorer,
    ScoreResult,
)

__all__ = ["Embedding", "Job", "Judgment", "RiskIncident", "Score", "ScoreResult", "Scorer"]
