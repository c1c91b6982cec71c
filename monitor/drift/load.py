"""What the drift job compares, read from the store: prompt embeddings of the window and
of its reference span (a pinned baseline, else the rolling span just before the window).

A rolling reference leaves out the windows of earlier reports that flagged drift: else an
incident enters the reference as it goes on, and once it is over the return to normal
reads as drift (for hours, until the incident has rolled out of the reference). Those
windows cover the incident from the first flag's window start to the last flag.

Vectors of different embedders are not comparable, so a window is read for its main
embedder only, and its reference for the same one. Large spans are subsampled by a keyed
hash of the event id: the same rows give the same subsample, spread over the span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    excluded: tuple[tuple[datetime, datetime], ...] = ()
    """Sub-spans ``[start, end)`` left out: windows that were flagged drifted (rolling)."""


@dataclass(frozen=True)
class SpanSize:
    """How much a reference holds, before its vectors are read."""

    n: int
    digest: str
    """Digest of its event ids: the same rows, the same digest."""
    first: datetime | None
    """Event time of its first embedding."""


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
        return _embeddings(
            queries.prompt_embeddings(self.store, start, end, version, embedder, salt, limit)
        )

    def load_window(self, start: datetime, end: datetime, embedder: str, salt: str) -> Embeddings:
        """The window's embeddings (all versions), at most ``max_window`` of them."""
        return self.load(start, end, "", embedder, self.settings.max_window, salt)

    def load_reference(self, ref: ReferenceSpan, salt: str) -> Embeddings:
        """The reference's embeddings, at most ``max_reference`` of them."""
        rows = queries.prompt_embeddings(
            self.store,
            ref.start,
            ref.end,
            ref.version_filter,
            ref.embedder,
            salt,
            self.settings.max_reference,
            ref.excluded,
        )
        return _embeddings(rows)

    def size(self, ref: ReferenceSpan) -> SpanSize:
        """Rows, digest of their event ids and first event time of the reference span."""
        n, digest, first = queries.span_fingerprint(
            self.store, ref.start, ref.end, ref.version_filter, ref.embedder, ref.excluded
        )
        return SpanSize(n, digest, first)

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
        flagged = queries.flagged_windows(self.store, start, window_start)
        return ReferenceSpan("rolling", start, window_start, "", embedder, merged(flagged))


def merged(spans: list[tuple[datetime, datetime]]) -> tuple[tuple[datetime, datetime], ...]:
    """Overlapping or touching spans joined; sorted by start."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def _embeddings(rows: list[dict[str, Any]]) -> Embeddings:
    # They come in hash order; event-id order is the canonical one every draw relies on.
    rows.sort(key=lambda r: r["event_id"])
    if not rows:
        return Embeddings([], [], np.zeros((0, 0), dtype=np.float32))
    vectors = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    return Embeddings([r["event_id"] for r in rows], [r["model_version"] for r in rows], vectors)
