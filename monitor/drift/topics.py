"""Topics of a reference (k-means) and how a window's traffic moves between them.

- **Topic clusters**: k-means (k-means++ init, seeded) fitted on the reference; share per
  cluster in the reference and the window; PSI and a chi-square test of the 2 × k table.
- **New-topic rate**: share of window embeddings farther from every reference centroid
  than a threshold calibrated on reference points held out of the k-means fit (its
  ``new_topic_quantile``); a one-sided Fisher exact test against the held-out rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.drift.vectors import F32, F64, I64, sq_dists


def nearest_centroid(x: F32, centroids: F32) -> tuple[I64, F32]:
    """Index of and Euclidean distance to the nearest centroid, per row."""
    d = sq_dists(x, centroids)
    labels = d.argmin(1).astype(np.int64)
    return labels, np.sqrt(d[np.arange(len(x)), labels]).astype(np.float32)


def _kmeans_pp(x: F32, k: int, rng: np.random.Generator) -> F32:
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    centers[0] = x[rng.integers(len(x))]
    closest = sq_dists(x, centers[:1])[:, 0]
    for i in range(1, k):
        total = float(closest.sum())
        pick = rng.choice(len(x), p=closest / total) if total > 0 else rng.integers(len(x))
        centers[i] = x[pick]
        closest = np.minimum(closest, sq_dists(x, centers[i : i + 1])[:, 0])
    return centers


def kmeans(
    x: F32, k: int, rng: np.random.Generator, n_init: int = 3, max_iter: int = 60, tol: float = 1e-5
) -> tuple[F32, I64, float]:
    """Lloyd's k-means with k-means++ seeding; best of ``n_init`` runs by inertia.

    Returns (centroids k × d, labels, inertia). k is capped at the number of rows.
    """
    k = max(1, min(k, len(x)))
    best: tuple[F32, I64, float] | None = None
    for _ in range(n_init):
        centers = _kmeans_pp(x, k, rng)
        labels = np.zeros(len(x), dtype=np.int64)
        inertia = math.inf
        for _ in range(max_iter):
            d = sq_dists(x, centers)
            labels = d.argmin(1).astype(np.int64)
            new_inertia = float(d[np.arange(len(x)), labels].sum())
            counts = np.bincount(labels, minlength=k)
            # Per-cluster sums as one GEMM with the one-hot assignment (np.add.at is slow).
            onehot = np.zeros((k, len(x)), dtype=np.float32)
            onehot[labels, np.arange(len(x))] = 1.0
            sums = onehot @ x
            for c in np.flatnonzero(counts == 0):
                # An empty cluster takes the point farthest from its centre, so k stays k.
                far = int(d[np.arange(len(x)), labels].argmax())
                sums[c], counts[c] = x[far], 1
            centers = (sums / counts[:, None]).astype(np.float32)
            if inertia - new_inertia <= tol * max(new_inertia, 1e-12):
                inertia = new_inertia
                break
            inertia = new_inertia
        if best is None or inertia < best[2]:
            best = (centers, labels, inertia)
    assert best is not None
    centers, _, _ = best
    labels, dist = nearest_centroid(x, centers)
    return centers, labels, float((dist.astype(np.float64) ** 2).sum())


@dataclass(frozen=True)
class TopicModel:
    """k-means topics of a reference, with the new-topic threshold calibrated held-out."""

    centroids: F32
    ref_labels: I64
    """Cluster of every reference row (fit and held-out rows alike)."""
    threshold: float
    """Distance to the nearest centroid beyond which a row is a new topic."""
    calib_far: int
    """Held-out reference rows beyond the threshold..."""
    calib_n: int
    """...out of this many held-out rows."""

    @property
    def k(self) -> int:
        return len(self.centroids)

    @property
    def ref_counts(self) -> I64:
        return np.bincount(self.ref_labels, minlength=self.k).astype(np.int64)


def fit_topics(
    x: F32, k: int, rng: np.random.Generator, quantile: float = 0.99, holdout: float = 0.2
) -> TopicModel:
    """Fit k-means on most of ``x``; calibrate the new-topic threshold on the rest.

    In-sample distances to centroids are optimistic (the centroids were pulled toward
    those very points), so the threshold and its base rate come from held-out rows.
    """
    n = len(x)
    order = rng.permutation(n)
    n_cal = max(1, min(n - k, round(n * holdout)))
    cal, fit = order[:n_cal], order[n_cal:]
    centroids, _, _ = kmeans(x[fit], k, rng)
    _, cal_dist = nearest_centroid(x[cal], centroids)
    # At least a handful of held-out rows must lie beyond the threshold, or the base rate
    # is a guess; small references therefore get a lower quantile.
    q = min(quantile, 1.0 - 5.0 / n_cal) if n_cal > 10 else 0.5
    threshold = float(np.quantile(cal_dist, max(q, 0.5)))
    labels, _ = nearest_centroid(x, centroids)
    return TopicModel(
        centroids=centroids,
        ref_labels=labels,
        threshold=threshold,
        calib_far=int((cal_dist > threshold).sum()),
        calib_n=int(n_cal),
    )


@dataclass(frozen=True)
class ShareShift:
    """How cluster shares moved between reference and window."""

    ref_share: F64
    cur_share: F64
    psi_terms: F64
    """Per-cluster PSI contribution (q − p)·ln(q/p), ≥ 0."""
    psi: float
    chi2: float
    p_value: float
    dof: int


def share_shift(ref_counts: I64, cur_counts: I64, eps: float = 1e-4) -> ShareShift:
    """PSI and a chi-square test of homogeneity on the 2 × k table of cluster counts.

    ``eps`` floors empty shares so the PSI stays finite (the usual smoothing).
    """
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    p = ref / max(ref.sum(), 1.0)
    q = cur / max(cur.sum(), 1.0)
    pe, qe = np.maximum(p, eps), np.maximum(q, eps)
    terms = (qe - pe) * np.log(qe / pe)
    used = (ref + cur) > 0
    table = np.vstack([ref[used], cur[used]])
    if table.shape[1] >= 2 and table.sum(1).min() > 0:
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        dof = table.shape[1] - 1
        # scipy.stats costs ~65 MB of RSS: loaded when a test first runs, not at import.
        from scipy import stats as sps

        p_value = float(sps.chi2.sf(chi2, dof))
    else:
        chi2, dof, p_value = 0.0, 0, 1.0
    return ShareShift(p, q, terms, float(terms.sum()), chi2, p_value, dof)


def new_topic_test(
    cur_far: int, cur_n: int, calib_far: int, calib_n: int
) -> tuple[float, float, float]:
    """(window rate, reference base rate, one-sided Fisher exact p) for far-from-all rows."""
    rate = cur_far / cur_n if cur_n else 0.0
    base = calib_far / calib_n if calib_n else 0.0
    if cur_n == 0 or calib_n == 0:
        return rate, base, 1.0
    table = [[cur_far, cur_n - cur_far], [calib_far, calib_n - calib_far]]
    from scipy import stats as sps

    _, p = sps.fisher_exact(table, alternative="greater")
    return rate, base, float(p)
