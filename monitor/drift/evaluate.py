"""Testing a window against its reference: the reference model, fitted once per reference
and cached, and the comparison (the maths is in `monitor.drift.comparison`).

Determinism: every random draw is seeded from stable inputs: the reference's identity
(its span, filter, embedder and a digest of its event ids) for everything fitted on the
reference, plus ``as_of`` and the scope for the permutations. The same events therefore
give the same results in `vigil replay` and in the live worker, cache or no cache.

Cost: what depends on the reference alone (bandwidth, Fourier features, k-means, the
new-topic threshold) is cached by the reference's identity, so a pinned baseline is
fitted once, not every few minutes; a rolling reference moves with the window and is
refitted (about 0.3 s for 5,000 × 384).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import DriftSettings
from monitor.drift.comparison import (
    Comparison,
    ReferenceModel,
    StatParams,
    alpha_per_test,
    build_reference,
    compare,
)
from monitor.drift.load import EmbeddingLoader, ReferenceSpan, SpanSize
from monitor.drift.seeds import seed_from
from monitor.drift.vectors import F32
from monitor.times import iso


def params_from(settings: DriftSettings) -> StatParams:
    """The statistics' parameters, with the per-test level after alpha spending."""
    return StatParams(
        permutations=settings.permutations,
        clusters=settings.clusters,
        rff_features=settings.rff_features,
        new_topic_quantile=settings.new_topic_quantile,
        alpha_test=alpha_per_test(settings.alpha, settings.every_minutes),
        min_mmd=settings.min_mmd,
        min_psi=settings.min_psi,
        min_new_topic=settings.min_new_topic,
    )


@dataclass(frozen=True)
class FittedReference:
    """A reference model and the events it was fitted on."""

    ref_id: str
    """The reference's identity (hex): the cache key and the seed of its draws."""
    model: ReferenceModel
    event_ids: list[str]


class WindowTester:
    """Fits (or reuses) reference models and compares windows with them."""

    def __init__(
        self,
        settings: DriftSettings,
        params: StatParams,
        loader: EmbeddingLoader,
        cache_size: int = 4,
    ) -> None:
        self.settings = settings
        self.params = params
        self.loader = loader
        self._cache: OrderedDict[str, FittedReference] = OrderedDict()
        self._cache_size = cache_size
        self.fits = 0
        """How many references were fitted (the rest came from the cache)."""

    def fitted(self, ref: ReferenceSpan) -> FittedReference | SpanSize:
        """The reference's model, from the cache when its rows are unchanged; its size
        alone when it is too small to test against (`enough`)."""
        size = self.loader.size(ref)
        if not self.enough(ref, size):
            return size
        ref_id = "{:016x}".format(
            seed_from(
                ref.kind,
                iso(ref.start),
                iso(ref.end),
                ref.version_filter,
                ref.embedder,
                # Only when there are some, so an unexcluded reference keeps its old seed.
                *([[(iso(a), iso(b)) for a, b in ref.excluded]] if ref.excluded else []),
                size.n,
                size.digest,
                self.params,
            )
        )
        hit = self._cache.get(ref_id)
        if hit is not None:
            self._cache.move_to_end(ref_id)
            return hit
        rows = self.loader.load_reference(ref, salt=ref_id)
        model = build_reference(rows.vectors, self.params, seed_from("reference", ref_id))
        fitted = FittedReference(ref_id, model, rows.ids)
        self.fits += 1
        self._cache[ref_id] = fitted
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return fitted

    def enough(self, ref: ReferenceSpan, size: SpanSize) -> bool:
        """At least ``min_reference_events`` embeddings spanning ``min_reference_minutes``."""
        s = self.settings
        if size.first is None or size.n < max(s.min_reference_events, s.min_window_events):
            return False
        return ref.end - size.first >= timedelta(minutes=s.min_reference_minutes)

    def compare(
        self, fitted: FittedReference, window: F32, as_of: datetime, scope: str
    ) -> Comparison:
        """Every test of the window's vectors against the reference, and the decision."""
        return compare(
            fitted.model, window, self.params, seed_from(fitted.ref_id, iso(as_of), scope)
        )
