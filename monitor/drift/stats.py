"""Drift statistics on embedding matrices: pure functions on numpy arrays, no store, no I/O.

The tests (all on L2-normalised prompt embeddings, reference ``X`` of n rows against the
current window ``Y`` of m rows):

- **MMD** with a Gaussian kernel (bandwidth: median pairwise distance of the reference),
  computed on random Fourier features (Rahimi & Recht 2007): with a feature map ``z`` of
  F frequencies, MMD² = ‖mean z(X) − mean z(Y)‖². The permutation test then costs one
  (P × N) @ (N × 2F) product for P permutations instead of P passes over an N × N kernel
  matrix. The RFF kernel is itself a valid kernel, so the permutation test stays exact
  for it; it only approximates the Gaussian one. The p-value reported for decisions is
  the upper tail of a gamma distribution fitted by moments to the permutation null
  (Gretton et al. 2009), because P permutations cannot resolve the small levels that
  repeated testing needs (below); the raw permutation p-value is reported beside it.
- **Centroid cosine distance** 1 − cos(mean X, mean Y): descriptive, cheap, readable.
- **Topic clusters**: k-means (k-means++ init, seeded) fitted on the reference; share per
  cluster in the reference and the window; PSI and a chi-square test of the 2 × k table.
- **New-topic rate**: share of window embeddings farther from every reference centroid
  than a threshold calibrated on reference points held out of the k-means fit (its
  ``new_topic_quantile``); a one-sided Fisher exact test against the held-out rate.

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

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Number of tests in one report that share its alpha (MMD, cluster shares, new topic).
TESTS_PER_REPORT = 3


# -- small helpers -----------------------------------------------------------------------


def blas_threads(n: int) -> AbstractContextManager[object]:
    """Limit BLAS threads to ``n`` inside a ``with`` block (0: leave the library default).

    On cores shared with other work, multi-threaded BLAS spins against it and is many times
    slower than one thread; the drift maths is small enough for one core.
    """
    if n <= 0:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    limits: AbstractContextManager[object] = threadpool_limits(limits=n, user_api="blas")
    return limits


def seed_from(*parts: object) -> int:
    """A 64-bit seed from stable inputs (strings, numbers): same inputs, same seed.

    Python's ``hash`` is salted per process, so a digest is used instead.
    """
    import hashlib

    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def normalize_rows(x: NDArray[np.floating]) -> F32:
    """Rows scaled to unit L2 norm (float32); zero rows stay zero."""
    out = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    scaled: F32 = (out / norms).astype(np.float32, copy=False)
    return scaled


def subsample(n: int, limit: int, rng: np.random.Generator) -> I64:
    """Sorted indices of at most ``limit`` of ``n`` rows (all of them when n <= limit)."""
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.int64)


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


def _sq_dists(x: F32, c: F32) -> F32:
    # ‖x−c‖² = ‖x‖² − 2x·c + ‖c‖², one GEMM; clipped because rounding can go below 0.
    d = (x * x).sum(1)[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    out: F32 = np.maximum(d, 0.0).astype(np.float32, copy=False)
    return out


# -- MMD -------------------------------------------------------------------------------


def median_bandwidth(x: F32, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance within ``x`` (on a seeded subsample)."""
    idx = subsample(len(x), max_points, rng)
    s = x[idx]
    d = _sq_dists(s, s)
    upper = d[np.triu_indices(len(s), k=1)]
    med = float(np.sqrt(np.median(upper))) if upper.size else 1.0
    return med if med > 1e-6 else 1.0


def rff_frequencies(dim: int, features: int, bandwidth: float, rng: np.random.Generator) -> F32:
    """Frequencies (dim × features/2) of the Gaussian kernel exp(−‖x−y‖²/(2σ²))."""
    half = max(1, features // 2)
    return (rng.standard_normal((dim, half)) / bandwidth).astype(np.float32)


def rff_map(x: F32, omega: F32) -> F32:
    """Random Fourier features [cos xω, sin xω]/√(F/2): z(x)·z(y) ≈ k(x, y)."""
    proj = x @ omega
    scale = np.float32(1.0 / math.sqrt(omega.shape[1]))
    return np.hstack([np.cos(proj), np.sin(proj)]).astype(np.float32, copy=False) * scale


@dataclass(frozen=True)
class MMDResult:
    """The MMD permutation test on one reference/window pair."""

    mmd2: float
    """Observed (biased, V-statistic) MMD² on the feature map."""
    effect: float
    """√max(MMD² − null mean, 0): the MMD beyond what sampling noise alone gives."""
    p_value: float
    """Gamma tail fitted to the permutation null (for small levels)."""
    p_perm: float
    """Plain permutation p-value (1 + #{null ≥ observed}) / (P + 1)."""
    permutations: int
    null_mean: float
    null_sd: float
    exceeds_all: bool
    """Observed statistic above every permuted one."""


def mmd_permutation_test(
    zx: F32, zy: F32, permutations: int, rng: np.random.Generator, chunk: int = 64
) -> MMDResult:
    """Permutation test of MMD² on feature maps ``zx`` (n × D) and ``zy`` (m × D)."""
    n, m = len(zx), len(zy)
    diff = zx.mean(0, dtype=np.float64) - zy.mean(0, dtype=np.float64)
    observed = float(diff @ diff)
    pooled = np.vstack([zx, zy])
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)]).astype(np.float32)
    null = np.empty(permutations, dtype=np.float64)
    # Each permutation is a signed weight vector over the pooled rows; a block of them is
    # one GEMM. Chunks bound memory (P × N floats) for large windows.
    for start in range(0, permutations, chunk):
        rows = min(chunk, permutations - start)
        weights = rng.permuted(np.tile(base, (rows, 1)), axis=1)
        means = (weights @ pooled).astype(np.float64)
        null[start : start + rows] = np.einsum("ij,ij->i", means, means)
    mean = float(null.mean())
    var = float(null.var(ddof=1)) if permutations > 1 else 0.0
    if var > 0 and mean > 0:
        shape, scale = mean * mean / var, var / mean
        p_gamma = float(sps.gamma.sf(observed, shape, scale=scale))
    else:
        p_gamma = 1.0 if observed <= mean else 0.0
    p_perm = (1.0 + float((null >= observed).sum())) / (permutations + 1.0)
    return MMDResult(
        mmd2=observed,
        effect=math.sqrt(max(observed - mean, 0.0)),
        p_value=p_gamma,
        p_perm=p_perm,
        permutations=permutations,
        null_mean=mean,
        null_sd=math.sqrt(var),
        exceeds_all=bool(observed > null.max()) if permutations else False,
    )


def mmd2_exact(x: F32, y: F32, bandwidth: float) -> float:
    """Exact biased Gaussian-kernel MMD² (O((n+m)²) memory): for checks and baselines."""
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    kxx = np.exp(-gamma * _sq_dists(x, x)).mean()
    kyy = np.exp(-gamma * _sq_dists(y, y)).mean()
    kxy = np.exp(-gamma * _sq_dists(x, y)).mean()
    return float(kxx + kyy - 2.0 * kxy)


def naive_mmd_permutation_test(
    x: F32, y: F32, bandwidth: float, permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """The textbook test: full kernel matrix, then each permutation re-sums its blocks.

    The baseline the drift-cost benchmark compares against; returns (MMD², p_perm).
    """
    n = len(x)
    pooled = np.vstack([x, y])
    kernel = np.exp(-_sq_dists(pooled, pooled) / np.float32(2.0 * bandwidth * bandwidth))

    def stat(idx: I64) -> float:
        a, b = idx[:n], idx[n:]
        return float(
            kernel[np.ix_(a, a)].mean()
            + kernel[np.ix_(b, b)].mean()
            - 2.0 * kernel[np.ix_(a, b)].mean()
        )

    order = np.arange(len(pooled), dtype=np.int64)
    observed = stat(order)
    null = np.array([stat(rng.permutation(order)) for _ in range(permutations)])
    return observed, (1.0 + float((null >= observed).sum())) / (permutations + 1.0)


def exact_mmd_permutation_test(
    x: F32, y: F32, bandwidth: float, permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Exact Gaussian-kernel permutation test with the kernel matrix computed once.

    Each permutation's MMD² is the quadratic form wᵀKw of its signed weight vector, so
    all of them are one (N × N) @ (N × P) product. Returns (MMD², p_perm).
    """
    n, m = len(x), len(y)
    pooled = np.vstack([x, y])
    kernel = np.exp(-_sq_dists(pooled, pooled) / np.float32(2.0 * bandwidth * bandwidth))
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)]).astype(np.float32)
    observed = float(base @ kernel @ base)
    weights = rng.permuted(np.tile(base, (permutations, 1)), axis=1)
    null = np.einsum("pi,ip->p", weights, kernel @ weights.T).astype(np.float64)
    return observed, (1.0 + float((null >= observed).sum())) / (permutations + 1.0)


def centroid_cosine_distance(x: F32, y: F32) -> float:
    """1 − cosine similarity of the two mean embeddings."""
    a, b = x.mean(0, dtype=np.float64), y.mean(0, dtype=np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float(a @ b) / denom if denom > 0 else 0.0


# -- k-means topics ----------------------------------------------------------------------


def nearest_centroid(x: F32, centroids: F32) -> tuple[I64, F32]:
    """Index of and Euclidean distance to the nearest centroid, per row."""
    d = _sq_dists(x, centroids)
    labels = d.argmin(1).astype(np.int64)
    return labels, np.sqrt(d[np.arange(len(x)), labels]).astype(np.float32)


def _kmeans_pp(x: F32, k: int, rng: np.random.Generator) -> F32:
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    centers[0] = x[rng.integers(len(x))]
    closest = _sq_dists(x, centers[:1])[:, 0]
    for i in range(1, k):
        total = float(closest.sum())
        pick = rng.choice(len(x), p=closest / total) if total > 0 else rng.integers(len(x))
        centers[i] = x[pick]
        closest = np.minimum(closest, _sq_dists(x, centers[i : i + 1])[:, 0])
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
            d = _sq_dists(x, centers)
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
    _, p = sps.fisher_exact(table, alternative="greater")
    return rate, base, float(p)


# -- one comparison, end to end ------------------------------------------------------------


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
