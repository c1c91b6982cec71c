"""The drift job: prompt embeddings of a reference against the current window, in event time.

Each firing (an event-time timer, ``drift.every_minutes``) looks at the window
``[as_of − window_minutes, as_of)`` of prompt embeddings and compares it with a reference:

- **pinned** (`vigil baseline pin`, stored in table ``state`` under ``drift.baseline`` or
  ``drift.baseline:<model_version>``), or else
- **rolling**: the ``reference_minutes`` just before the window, less the windows of
  reports that flagged drift (`monitor.drift.load`: an incident must not become its own
  reference, or its end reads as drift).

A reference with fewer than ``min_reference_events`` embeddings, or spanning less than
``min_reference_minutes``, is not tested against: the report says ``not_enough_reference``
(at the start of a stream the rolling reference holds only minutes of traffic).

One report covers all traffic (``model_version = ''``); one more per version is written
when the window mixes versions (a canary) or when that version has a baseline of its own.

`DriftJob` coordinates three parts, one module each: `monitor.drift.load` reads the
embeddings and picks the reference, `monitor.drift.evaluate` fits (or reuses) the
reference model and runs the tests, `monitor.drift.describe` turns the result into a
``drift_reports`` row. The statistics (MMD on random Fourier features with a permutation
null, centroid cosine, k-means topic shares with PSI/chi-square, new-topic rate) and the
correction for repeated testing (alpha spent evenly over a day of event time, split over
the three tests, plus a minimum effect per test) are in `monitor.drift.comparison` and
the modules it names; read its docstring for the maths.

Determinism: rows are read in a fixed order, subsamples are taken by a keyed hash of the
event id, and every random draw is seeded from stable inputs (`monitor.drift.evaluate`):
the same events give the same reports in `vigil replay` and in the live worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from monitor.config import DriftSettings, Settings
from monitor.drift.baseline import Baseline
from monitor.drift.describe import ReportDescriber
from monitor.drift.evaluate import WindowTester, params_from
from monitor.drift.load import EmbeddingLoader, Embeddings, SpanSize
from monitor.drift.vectors import blas_threads
from monitor.errors import StoreError
from monitor.store.base import Store
from monitor.times import iso

log = logging.getLogger("vigil.drift")


class DriftJob:
    """Loads embeddings, runs the tests, writes ``drift_reports``; one instance per pipeline."""

    def __init__(self, settings: DriftSettings, store: Store, cache_size: int = 4) -> None:
        self.settings = settings
        self.store = store
        self.params = params_from(settings)
        self.loader = EmbeddingLoader(settings, store)
        self.tester = WindowTester(settings, self.params, self.loader, cache_size)
        self.describer = ReportDescriber(settings, store, self.params.alpha_test)

    @property
    def fits(self) -> int:
        """How many references were fitted (the rest came from the cache)."""
        return self.tester.fits

    async def __call__(self, as_of: datetime) -> None:
        try:
            await asyncio.to_thread(self.run, as_of)
        except StoreError as exc:
            # A failed drift evaluation must not stop ingestion; the next firing retries.
            log.warning("drift job failed", extra={"as_of": iso(as_of), "error": str(exc)[:300]})

    def run(self, as_of: datetime) -> list[dict[str, Any]]:
        """Evaluate every scope at ``as_of``, store the reports and return them (rows)."""
        with blas_threads(self.settings.blas_threads):
            return self._run(as_of)

    def _run(self, as_of: datetime) -> list[dict[str, Any]]:
        started = time.perf_counter()
        s = self.settings
        window_start = as_of - timedelta(minutes=s.window_minutes)
        embedder = self.loader.window_embedder(window_start, as_of)
        if embedder is None:
            return []
        window = self.loader.load_window(window_start, as_of, embedder, salt=iso(as_of))
        baselines = self.loader.baselines()
        reports: list[dict[str, Any]] = []
        for scope in self._scopes(window.versions, baselines):
            mask = (
                np.ones(len(window), dtype=bool)
                if not scope
                else np.array([v == scope for v in window.versions], dtype=bool)
            )
            if int(mask.sum()) < s.min_window_events:
                log.debug(
                    "drift window too small", extra={"model_version": scope, "n": int(mask.sum())}
                )
                continue
            reports.append(
                self._evaluate(as_of, window_start, scope, baselines, embedder, window.where(mask))
            )
        if reports:
            self.store.insert("drift_reports", reports)
        log.info(
            "drift job ran",
            extra={
                "as_of": iso(as_of),
                "reports": len(reports),
                "drifted": [r["model_version"] for r in reports if r["drifted"]],
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return reports

    def _scopes(self, versions: list[str], baselines: dict[str, Baseline]) -> list[str]:
        """All traffic (''), then each version big enough to test, when the window mixes
        versions or the version has a baseline of its own."""
        counts: dict[str, int] = defaultdict(int)
        for version in versions:
            counts[version] += 1
        eligible = sorted(v for v, n in counts.items() if n >= self.settings.min_window_events)
        return [""] + [v for v in eligible if len(eligible) >= 2 or v in baselines]

    def _evaluate(
        self,
        as_of: datetime,
        window_start: datetime,
        scope: str,
        baselines: dict[str, Baseline],
        embedder: str,
        window: Embeddings,
    ) -> dict[str, Any]:
        ref = self.loader.reference_for(scope, baselines, window_start, embedder)
        fitted = self.tester.fitted(ref)
        if isinstance(fitted, SpanSize):
            log.info(
                "drift reference too small",
                extra={
                    "model_version": scope,
                    "reference": ref.kind,
                    "as_of": iso(as_of),
                    "n": fitted.n,
                },
            )
            return self.describer.short_row(as_of, window_start, scope, ref, fitted.n, len(window))
        result = self.tester.compare(fitted, window.vectors, as_of, scope)
        return self.describer.report_row(as_of, window_start, scope, ref, fitted, window, result)


def build_drift_timer(
    settings: Settings, store: Store
) -> tuple[float, Callable[[datetime], Awaitable[None]]] | None:
    """The drift job as an event-time timer (for ``monitor.assembly.TIMERS``)."""
    if not settings.drift.enabled:
        return None
    return settings.drift.every_minutes * 60.0, DriftJob(settings.drift, store)
