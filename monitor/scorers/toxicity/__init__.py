"""The toxicity scorer and its backends (each backend module is imported only when chosen)."""

from monitor.scorers.toxicity.scorer import (
    BACKENDS,
    HEADLINE,
    ToxicityBackend,
    ToxicityScorer,
    build_toxicity_scorer,
    load_backend,
)

__all__ = [
    "BACKENDS",
    "HEADLINE",
    "ToxicityBackend",
    "ToxicityScorer",
    "build_toxicity_scorer",
    "load_backend",
]
