"""Row-vector primitives every drift test shares, and the BLAS threads they run on.

Pure numpy: rows are embeddings (one per event), matrices are float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


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


def sq_dists(x: F32, c: F32) -> F32:
    """Squared Euclidean distances, rows of ``x`` against rows of ``c`` (len(x) × len(c))."""
    # ‖x−c‖² = ‖x‖² − 2x·c + ‖c‖², one GEMM; clipped because rounding can go below 0.
    d = (x * x).sum(1)[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    out: F32 = np.maximum(d, 0.0).astype(np.float32, copy=False)
    return out
