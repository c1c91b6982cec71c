"""One window against one reference: the tests, the decision, and the level they test at.

Pure functions on L2-normalised prompt embeddings, reference ``X`` of n rows against the
current window ``Y`` of m rows; no store, no I/O. The tests:

- **MMD** on random Fourier features with a permutation null (`monitor.drift.mmd`);
- **Centroid cosine distance** 1 − cos(mean X, mean Y): descriptive, cheap, readable;
- **Topic clusters** and the **new-topic rate** (`monitor.drift.topics`).

Repeated testing (the correction): the drift job tests every few minutes, so a fixed
p < 0.05 would fire on clean data about once an hour. Two guards, both required to flag:

1. **Alpha spending per day of event time**: the family-wise level ``alpha`` is spent
   evenly over the tests of one day, and split over the three tests of one report
   (Bonferroni), so ``alpha_test = alpha / (tests per day) / 3``. Overlapping windows
   make the tests positively correlated, which only makes this more conservative. It is
   stateless (a function of the settings), so a replay and the live worker agree.
2. **A minimum effect size** per test (excess MMD, PSI, excess new-topic rate), so a
   shift that is significant only because windows are large, but too small to matter,
   does not page anyone.

The MMD additionally needs the observed statistic to exceed every permuted one, so a
decision never rests on the gamma extrapolation alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from monitor.drift.mmd import (
    MMDResult,
    median_bandwidth,
    mmd_permutation_test,
    rff_frequencies,
    rff_map,
)
from monitor.drift.topics import (
    ShareShift,
    TopicModel,
    fit_topics,
    nearest_centroid,
    new_topic_test,
    share_shift,
)
from monitor.drift.vectors import F32, I64, normalize_rows

#: Number of tests in one report that share its alpha (MMD, cluster shares, new topic).
TESTS_PER_REPORT = 3


def alpha_per_test(
    alpha: float, every_minutes: float, tests_per_report: int = TESTS_PER_REPORT
) -> float:
    """Per-test level after spending ``alpha`` evenly over one day of reports.

    One report every ``every_minutes`` gives ``1440 / every_minutes`` reports a day, each
    with ``tests_per_report`` tests: Bonferroni over all of them bounds the chance of any
    false alarm in a clean day of one scope by ``alpha``.
    """
    reports_per_day = max(1.0, 1440.0 / every_minutes)
    return alpha / (reports_per_day * tests_per_report)


def centroid_cosine_distance(x: F32, y: F32) -> float:
    """1 − cosine similarity of the two mean embeddings."""
    a, b = x.mean(0, dtype=np.float64), y.mean(0, dtype=np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float(a @ b) / denom if denom > 0 else 0.0


@dataclass(frozen=True)
class StatParams:
    """What the statistics need from `DriftSettings` (kept apart so the maths is pure)."""

    permutations: int = 200
    clusters: int = 12
    rff_features: int = 1024
    new_topic_quantile: float = 0.99
    alpha_test: float = 1e-5
    min_mmd: float = 0.05
    min_psi: float = 0.1
    min_new_topic: float = 0.05


@dataclass(frozen=True)
class ReferenceModel:
    """Everything computed from the reference alone; reused while the reference is the same."""

    vectors: F32
    """Normalised (subsampled) reference rows."""
    bandwidth: float
    omega: F32
    features: F32
    topics: TopicModel


def build_reference(x: NDArray[np.floating], params: StatParams, seed: int) -> ReferenceModel:
    """Bandwidth, Fourier features and topics of a reference; seeded by its identity."""
    rng = np.random.default_rng(seed)
    xr = normalize_rows(x)
    bandwidth = median_bandwidth(xr, rng)
    omega = rff_frequencies(xr.shape[1], params.rff_features, bandwidth, rng)
    topics = fit_topics(xr, params.clusters, rng, params.new_topic_quantile)
    return ReferenceModel(xr, bandwidth, omega, rff_map(xr, omega), topics)


@dataclass(frozen=True)
class Comparison:
    """The three tests of one window against one reference, and the decision."""

    mmd: MMDResult
    centroid_cosine: float
    shares: ShareShift
    cur_labels: I64
    cur_dist: F32
    far: NDArray[np.bool_]
    new_topic_rate: float
    new_topic_base: float
    new_topic_p: float
    reasons: tuple[str, ...]
    """Which tests flagged: ``mmd``, ``cluster_shift``, ``new_topic`` (empty: no drift)."""

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


def compare(
    ref: ReferenceModel, y: NDArray[np.floating], params: StatParams, seed: int
) -> Comparison:
    """Run every test of window ``y`` against ``ref`` and decide (see the module doc)."""
    rng = np.random.default_rng(seed)
    yn = normalize_rows(y)
    mmd = mmd_permutation_test(ref.features, rff_map(yn, ref.omega), params.permutations, rng)
    topics = ref.topics
    labels, dist = nearest_centroid(yn, topics.centroids)
    far = dist > topics.threshold
    shares = share_shift(
        topics.ref_counts, np.bincount(labels, minlength=topics.k).astype(np.int64)
    )
    rate, base, p_new = new_topic_test(int(far.sum()), len(yn), topics.calib_far, topics.calib_n)
    reasons: list[str] = []
    if mmd.p_value < params.alpha_test and mmd.exceeds_all and mmd.effect >= params.min_mmd:
        reasons.append("mmd")
    if shares.p_value < params.alpha_test and shares.psi >= params.min_psi:
        reasons.append("cluster_shift")
    if p_new < params.alpha_test and rate - base >= params.min_new_topic:
        reasons.append("new_topic")
    return Comparison(
        mmd=mmd,
        centroid_cosine=centroid_cosine_distance(ref.vectors, yn),
        shares=shares,
        cur_labels=labels,
        cur_dist=dist,
        far=far,
        new_topic_rate=rate,
        new_topic_base=base,
        new_topic_p=p_new,
        reasons=tuple(reasons),
    )
