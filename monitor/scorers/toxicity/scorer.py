"""The toxicity scorer: an explicit registry of backends and the stage-facing `Scorer`.

Backends (``toxicity.backend``), each in its own module, imported only when chosen:

- ``profanity-check`` (default, offline): alt-profanity-check, a trained linear SVM on a
  bag of words shipped in its wheel. A profanity / offensive-language classifier, not a
  full toxicity model; one category, ``profanity``.
- ``detoxify`` (production): Detoxify's transformer models from a local checkpoint,
  per-category scores (toxicity, severe_toxicity, obscene, threat, insult,
  identity_attack, and sexual_explicit for ``unbiased``).

What is scored: the response, i.e. what the monitored model said. Per event the scorer
returns a headline score ``toxicity`` (Detoxify's ``toxicity`` category, else the highest
category; its label names the backend's category set) plus one score per other category,
and a `RiskIncident` (risk_type ``toxicity``) for every category at or above
``toxicity.threshold``; the pipeline stores them (tables ``scores`` and ``incidents``).

Models run in a worker thread (``asyncio.to_thread``), one batch at a time: two batches at
once on the same cores would only contend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from monitor.config import ToxicitySettings
from monitor.errors import ScorerError, VigilError
from monitor.scorers.base import Job, RiskIncident, Score, ScoreResult

log = logging.getLogger("vigil.scorers.toxicity")

#: The headline score every backend produces, whatever its categories are called.
HEADLINE = "toxicity"


class ToxicityBackend(Protocol):
    """A toxicity model: texts in, per-category probabilities out."""

    name: str
    """Registry name (profanity-check, detoxify)."""
    version: str
    """Identity of the model (package version, checkpoint), part of the scorer version."""
    categories: tuple[str, ...]
    """Column names of `predict`'s output."""

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities in [0, 1], shape (len(texts), len(categories)). May block."""
        ...


def _profanity_check(settings: ToxicitySettings) -> ToxicityBackend:
    from monitor.scorers.toxicity.profanity import ProfanityCheckBackend

    return ProfanityCheckBackend()


def _detoxify(settings: ToxicitySettings) -> ToxicityBackend:
    from monitor.scorers.torch_threads import configure_torch_threads
    from monitor.scorers.toxicity.detoxify import DetoxifyBackend

    configure_torch_threads(settings.torch_threads)
    return DetoxifyBackend(settings)


#: backend name -> factory. Adding a backend means adding a module and a line here.
BACKENDS: dict[str, Callable[[ToxicitySettings], ToxicityBackend]] = {
    "profanity-check": _profanity_check,
    "detoxify": _detoxify,
}


def load_backend(settings: ToxicitySettings) -> ToxicityBackend:
    """The configured backend, loaded. The one place where load failures are translated.

    Raises `ConfigError` for a bad setting and `ScorerError` when the model cannot load.
    """
    factory = BACKENDS.get(settings.backend)
    if factory is None:
        known = sorted(BACKENDS)
        raise ScorerError(f"unknown toxicity backend {settings.backend!r}; known: {known}")
    started = time.perf_counter()
    try:
        backend = factory(settings)
    except VigilError:
        raise
    except Exception as exc:  # torch, transformers, joblib, pickle: anything a model load raises
        reason = f"{type(exc).__name__}: {exc}"[:400]
        backend_name = settings.backend
        raise ScorerError(f"toxicity backend {backend_name!r} failed to load: {reason}") from exc
    log.info(
        "toxicity backend loaded",
        extra={
            "backend": backend.name,
            "version": backend.version,
            "categories": list(backend.categories),
            "load_s": round(time.perf_counter() - started, 2),
        },
    )
    return backend


class ToxicityScorer:
    """Scores responses with a `ToxicityBackend`; returns scores and toxicity incidents."""

    name = "toxicity"

    def __init__(self, backend: ToxicityBackend, settings: ToxicitySettings) -> None:
        self.backend = backend
        self.version = backend.version
        self.batch_size = settings.batch_size
        self.concurrency = 1
        self.threshold = settings.threshold
        categories = backend.categories
        if not categories:
            raise ScorerError(f"toxicity backend {backend.name!r} reports no categories")
        self._categories = categories
        self._headline = categories.index(HEADLINE) if HEADLINE in categories else None
        # One-category backends: the headline *is* the category, so it is written once,
        # labelled with the category's name; others label the headline with the backend.
        self._label = categories[0] if len(categories) == 1 else backend.name
        self._extra = (
            [(i, c) for i, c in enumerate(categories) if c != HEADLINE]
            if len(categories) > 1
            else []
        )
        self._calls = 0
        self._texts = 0
        self._incidents = 0
        self._model_s = 0.0

    async def score(self, jobs: list[Job]) -> list[ScoreResult]:
        texts = [job.event.response.content for job in jobs]
        probs = await asyncio.to_thread(self.predict, texts)
        threshold = self.threshold
        categories = self._categories
        results = []
        for job, row in zip(jobs, probs.tolist(), strict=True):
            headline = row[self._headline] if self._headline is not None else max(row)
            scores = [Score(HEADLINE, headline, self._label)]
            scores.extend(Score(category, row[i]) for i, category in self._extra)
            incidents = [
                RiskIncident("toxicity", categories[i], value)
                for i, value in enumerate(row)
                if value >= threshold
            ]
            self._incidents += len(incidents)
            results.append(ScoreResult(job.event.event_id, scores, incidents=incidents))
        return results

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Run the backend on ``texts`` (blocking); foreign errors become `ScorerError`."""
        started = time.perf_counter()
        try:
            probs = self.backend.predict(texts)
        except VigilError:
            raise
        except Exception as exc:  # whatever the model library raises for a whole batch
            name = self.backend.name
            raise ScorerError(f"toxicity backend {name!r} failed: {type(exc).__name__}") from exc
        self._model_s += time.perf_counter() - started
        self._calls += 1
        self._texts += len(texts)
        if probs.shape != (len(texts), len(self._categories)):
            raise ScorerError(
                f"toxicity backend {self.backend.name!r} returned shape {probs.shape} "
                f"for {len(texts)} texts and {len(self._categories)} categories"
            )
        return probs

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "calls": self._calls,
            "texts": self._texts,
            "incidents": self._incidents,
            "model_s": round(self._model_s, 3),
        }

    async def aclose(self) -> None:
        # CPU models hold no connections; dropping the reference is all there is to do.
        return None


def build_toxicity_scorer(settings: ToxicitySettings) -> ToxicityScorer:
    """The toxicity scorer the settings describe (used by ``monitor.assembly``)."""
    return ToxicityScorer(load_backend(settings), settings)
