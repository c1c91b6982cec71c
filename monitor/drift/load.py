"""What the drift job compares, read from the store: prompt embeddings of the window and
of its reference span (a pinned baseline, else the rolling span just before the window).

Vectors of different embedders are not comparable, so a window is read for its main
embedder only, and its reference for the same one. Large spans are subsampled by a keyed
hash of the event id: the same rows give the same subsample, spread over the span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from monitor.config import DriftSettings
from monitor.drift.baseline import Baseline, read_baselines
from monitor.drift.vectors import F32
from monitor.store.base import Store
from monitor.store.queries import drift as queries


@dataclass(frozen=True)
class ReferenceSpan:
    """Where a reference's embeddings come from: ``[start, end)`` of one embedder."""

    kind: str
    """``pinned`` or ``rolling``."""
    start: datetime
    end: datetime
    version_filter: str
    """Only this model_version ('' = all)."""
    embedder: str


@dataclass(frozen=True)
class Embeddings:
    """Prompt embeddings of a span, in event-id order."""

    ids: list[str]
    versions: list[str]
    vectors: F32

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, mask: NDArray[np.bool_]) -> Embeddings:
        """The rows where ``mask`` is true."""
        return Embeddings(
            [i for i, keep in zip(self.ids, mask, strict=True) if keep],
            [v for v, keep in zip(self.versions, mask, strict=True) if keep],
            self.vectors[mask],
        )


class EmbeddingLoader:
    """Reads windows, reference spans and pinned baselines for one drift job."""

    def __init__(self, settings: DriftSettings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def window_embedder(self, start: datetime, end: datetime) -> str | None:
        """The span's main embedder, or None when the span is too small to test."""
        top = queries.window_embedder(self.store, start, end)
        if top is None or top[1] < self.settings.min_window_events:
            return None
        return top[0]

    def load(
        self, start: datetime, end: datetime, version: str, embedder: str, limit: int, salt: str
    ) -> Embeddings:
        """At most ``limit`` prompt embeddings of the span, subsampled by a hash keyed by
        ``salt``."""
        rows = queries.prompt_embeddings(self.store, start, end, version, embedder, salt, limit)
        # They come in hash order; event-id order is the canonical one every draw relies on.
        rows.sort(key=lambda r: r["event_id"])
        if not rows:
            return Embeddings([], [], np.zeros((0, 0), dtype=np.float32))
        vectors = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        return Embeddings(
            [r["event_id"] for r in rows], [r["model_version"] for r in rows], vectors
        )

    def load_window(self, start: datetime, end: datetime, embedder: str, salt: str) -> Embeddings:
        """The window's embeddings (all versions), at most ``max_window`` of them."""
        return self.load(start, end, "", embedder, self.settings.max_window, salt)

    def load_reference(self, ref: ReferenceSpan, salt: str) -> Embeddings:
        """The reference's embeddings, at most ``max_reference`` of them."""
        return self.load(
            ref.start, ref.end, ref.version_filter, ref.embedder, self.settings.max_reference, salt
        )

    def fingerprint(self, ref: ReferenceSpan) -> tuple[int, str]:
        """(rows, digest of their event ids) of the reference span, without the vectors."""
        return queries.span_fingerprint(
            self.store, ref.start, ref.end, ref.version_filter, ref.embedder
        )

    def baselines(self) -> dict[str, Baseline]:
        """Pinned baselines by model_version ('' = all versions)."""
        return read_baselines(self.store)

    def reference_for(
        self, scope: str, baselines: dict[str, Baseline], window_start: datetime, embedder: str
    ) -> ReferenceSpan:
        """The scope's pinned baseline (else the all-versions one), else the rolling span."""
        pinned = baselines.get(scope) or baselines.get("")
        if pinned is not None:
            return ReferenceSpan("pinned", pinned.start, pinned.end, pinned.model_version, embedder)
        start = window_start - timedelta(minutes=self.settings.reference_minutes)
        return ReferenceSpan("rolling", start, window_start, "", embedder)
