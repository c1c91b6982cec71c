"""MMD between a reference ``X`` (n rows) and a window ``Y`` (m rows) of embeddings.

The kernel is Gaussian, its bandwidth the median pairwise distance of the reference. The
MMD is computed on random Fourier features (Rahimi & Recht 2007): with a feature map
``z`` of F frequencies, MMD² = ‖mean z(X) − mean z(Y)‖². The permutation test then costs
one (P × N) @ (N × 2F) product for P permutations instead of P passes over an N × N kernel
matrix. The RFF kernel is itself a valid kernel, so the permutation test stays exact for
it; it only approximates the Gaussian one. The p-value reported for decisions is the
upper tail of a gamma distribution fitted by moments to the permutation null (Gretton et
al. 2009), because P permutations cannot resolve the small levels that repeated testing
needs (see `monitor.drift.comparison`); the raw permutation p-value is reported beside it.

The exact-kernel tests at the end are what the tests and the drift-cost benchmark
compare the RFF test against; the drift job does not use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.drift.vectors import F32, I64, sq_dists, subsample


def median_bandwidth(x: F32, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance within ``x`` (on a seeded subsample)."""
    idx = subsample(len(x), max_points, rng)
    s = x[idx]
    d = sq_dists(s, s)
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
        # scipy.stats costs ~65 MB of RSS: loaded when a test first runs, not at import.
        from scipy import stats as sps

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


# -- the exact Gaussian kernel, for checks and baselines -------------------------------------


def mmd2_exact(x: F32, y: F32, bandwidth: float) -> float:
    """Exact biased Gaussian-kernel MMD² (O((n+m)²) memory): for checks and baselines."""
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    kxx = np.exp(-gamma * sq_dists(x, x)).mean()
    kyy = np.exp(-gamma * sq_dists(y, y)).mean()
    kxy = np.exp(-gamma * sq_dists(x, y)).mean()
    return float(kxx + kyy - 2.0 * kxy)


def naive_mmd_permutation_test(
    x: F32, y: F32, bandwidth: float, permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """The textbook test: full kernel matrix, then each permutation re-sums its blocks.

    The baseline the drift-cost benchmark compares against; returns (MMD², p_perm).
    """
    n = len(x)
    pooled = np.vstack([x, y])
    kernel = np.exp(-sq_dists(pooled, pooled) / np.float32(2.0 * bandwidth * bandwidth))

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
    kernel = np.exp(-sq_dists(pooled, pooled) / np.float32(2.0 * bandwidth * bandwidth))
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)]).astype(np.float32)
    observed = float(base @ kernel @ base)
    weights = rng.permuted(np.tile(base, (permutations, 1)), axis=1)
    null = np.einsum("pi,ip->p", weights, kernel @ weights.T).astype(np.float64)
    return observed, (1.0 + float((null >= observed).sum())) / (permutations + 1.0)
