"""Drift-test cost: Vigil's drift statistics against a naive full-permutation MMD.

Reference 5,000 × window 2,000 × 384 dimensions (MiniLM's size) by default, the same
permutation count for both. Prints figures; asserts nothing (a benchmark, not a test).

- vigil cold: everything a firing with a new reference does: median-heuristic bandwidth,
  random Fourier features, k-means topics with the held-out new-topic threshold, then the
  window's tests (MMD permutation test, centroid cosine, cluster shares, new-topic rate);
- vigil warm: the window's tests only, with the reference's pieces from the cache (a pinned
  baseline; what a timer firing every few minutes pays);
- naive: the textbook test on the exact Gaussian kernel: the full (n+m)² kernel matrix
  once, then each permutation re-sums its three blocks (gathered from the matrix);
- exact, batched: the same exact test written well: kernel matrix once, every
  permutation's MMD² a quadratic form, all of them one GEMM. A fairer baseline.

The data are synthetic unit vectors around 12 topic centres, with a 40% surge of a 13th
topic in the window, so both tests have something to find; cost does not depend on the
content. Run: ``.venv/bin/python bench/drift_cost.py [--reference N --window M ...]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.drift.comparison import StatParams, alpha_per_test, build_reference, compare
from monitor.drift.mmd import exact_mmd_permutation_test, naive_mmd_permutation_test
from monitor.drift.vectors import blas_threads, normalize_rows


def _data(n: int, m: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = normalize_rows(rng.standard_normal((13, dim)))

    def draw(count: int, surge: float) -> np.ndarray:
        topic = np.where(rng.random(count) < surge, 12, rng.integers(0, 12, count))
        return normalize_rows(centres[topic] + 0.06 * rng.standard_normal((count, dim)))

    return draw(n, 0.0), draw(m, 0.4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=int, default=5000)
    ap.add_argument("--window", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument(
        "--naive-permutations",
        type=int,
        default=None,
        help="permutations for the naive test (default: the same as Vigil's); "
        "fewer keeps a run short on a busy machine, and the line says so",
    )
    ap.add_argument("--features", type=int, default=1024)
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3, help="Vigil runs (the median is shown)")
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads (the drift job's default is 1; 0: library default)",
    )
    args = ap.parse_args()
    naive_perms = args.naive_permutations or args.permutations

    x, y = _data(args.reference, args.window, args.dim, seed=1)
    params = StatParams(
        permutations=args.permutations,
        clusters=args.clusters,
        rff_features=args.features,
        alpha_test=alpha_per_test(0.01, 5.0),
    )
    print(
        f"drift cost: reference {args.reference} x window {args.window} x {args.dim} dims, "
        f"{args.permutations} permutations, k={args.clusters}, {args.features} Fourier "
        f"features, BLAS threads {args.blas_threads or 'default'}"
    )
    with blas_threads(args.blas_threads):
        cold, warm = [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            ref = build_reference(x, params, seed=100 + i)
            t1 = time.perf_counter()
            result = compare(ref, y, params, seed=200 + i)
            t2 = time.perf_counter()
            cold.append(t2 - t0)
            warm.append(t2 - t1)
        t0 = time.perf_counter()
        naive_mmd2, naive_p = naive_mmd_permutation_test(
            x, y, ref.bandwidth, naive_perms, np.random.default_rng(3)
        )
        naive_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact_mmd2, exact_p = exact_mmd_permutation_test(
            x, y, ref.bandwidth, args.permutations, np.random.default_rng(4)
        )
        exact_s = time.perf_counter() - t0
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"vigil cold (fit reference + tests): {cold_s:8.3f} s   (median of {args.repeats})")
    print(f"vigil warm (cached reference):      {warm_s:8.3f} s   (median of {args.repeats})")
    print(
        f"naive full-permutation MMD:         {naive_s:8.3f} s   "
        f"(exact Gaussian kernel, {naive_perms} permutations, one run)"
    )
    print(
        f"exact, batched permutations:        {exact_s:8.3f} s   "
        f"(exact Gaussian kernel, {args.permutations} permutations as one GEMM, one run)"
    )
    print(f"ratio naive / vigil cold:           {naive_s / cold_s:8.1f}x")
    print(f"ratio naive / vigil warm:           {naive_s / warm_s:8.1f}x")
    print(f"ratio exact batched / vigil cold:   {exact_s / cold_s:8.1f}x")
    print(f"target <= 2 s per evaluation (cold): {'met' if cold_s <= 2.0 else 'NOT met'}")
    print(
        f"vigil: MMD2 {result.mmd.mmd2:.4f} (RFF), p {result.mmd.p_value:.2e} "
        f"(perm {result.mmd.p_perm:.4f}), new-topic rate {result.new_topic_rate:.1%}, "
        f"PSI {result.shares.psi:.3f}, flags {list(result.reasons)}"
    )
    print(
        f"naive: MMD2 {naive_mmd2:.4f} (exact), p_perm {naive_p:.4f}; "
        f"exact batched: MMD2 {exact_mmd2:.4f}, p_perm {exact_p:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
