"""MinHash signatures and LSH bands for many prompts at once (near-duplicate search).

The signatures are `datasketch`'s: its permutations, its hash function (SHA-1, 32 bits)
and its pre-mix, so each row equals ``MinHash(num_perm, seed).update_batch(shingles)``
(tests/test_evalset_export.py checks this). They are computed for every prompt in a few
numpy operations instead of one MinHash object per prompt, and each distinct shingle is
hashed once: per prompt, datasketch's own objects cost ~90 us to build and ~140 us to
insert into and query a `MinHashLSH`, which made near-duplicate search most of an
export's time (100k prompts: 21 s, against ~2 s here).

The bands are `MinHashLSH`'s (its ``b`` and ``r`` for the threshold): two prompts are
candidates when any band of their signatures is equal. Bands are keyed by a 64-bit mix
of their values; a rare key collision only adds a candidate, and every candidate's
similarity is estimated from the full signatures before anything is folded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Shingle rows per numpy step (bounds the (rows x permutations) intermediate).
_CHUNK_ROWS = 65536
_MASK32 = 0xFFFFFFFF


def _fmix32(hv: np.ndarray) -> np.ndarray:
    # MurmurHash3's finalizer, as datasketch pre-mixes hash values (32-bit scheme).
    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    mixed: np.ndarray = hv ^ (hv >> np.uint32(16))
    return mixed


def signatures(shingle_sets: Sequence[set[bytes]], num_perm: int, seed: int = 1) -> np.ndarray:
    """One row of ``num_perm`` minimum hash values per set (all-max for an empty set)."""
    from datasketch import MinHash
    from datasketch.hashfunc import sha1_hash32

    proto: Any = MinHash(num_perm=num_perm, seed=seed)
    if getattr(proto, "scheme", None) != "affine32":
        # Another datasketch scheme (older versions): its own objects, slower, the same.
        rows = MinHash.bulk([list(s) for s in shingle_sets], num_perm=num_perm, seed=seed)
        return np.array([m.hashvalues for m in rows]) if rows else np.zeros((0, num_perm))
    a, b = (np.asarray(p, dtype=np.uint32) for p in proto.permutations)
    index: dict[bytes, int] = {}
    columns: list[int] = []
    lengths = np.zeros(len(shingle_sets), dtype=np.int64)
    for row, shingle_set in enumerate(shingle_sets):
        lengths[row] = len(shingle_set)
        columns.extend(index.setdefault(s, len(index)) for s in shingle_set)
    hashed = _fmix32(np.fromiter(map(sha1_hash32, index), dtype=np.uint32, count=len(index)))
    values = hashed[np.asarray(columns, dtype=np.int64)]
    out = np.full((len(shingle_sets), num_perm), _MASK32, dtype=np.uint32)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    nonempty = np.flatnonzero(lengths)
    nonempty_ends = ends[nonempty]
    at = 0
    while at < len(nonempty):
        # The next rows whose shingles fit one chunk (at least one row).
        first = starts[nonempty[at]]
        stop = int(np.searchsorted(nonempty_ends, first + _CHUNK_ROWS, side="right"))
        rows = nonempty[at : max(stop, at + 1)]
        # (permutations x shingles): each prompt's shingles are contiguous in a row, where
        # reduceat runs several times faster than down columns.
        permuted = a[:, None] * values[None, first : ends[rows[-1]]] + b[:, None]  # mod 2^32
        out[rows] = np.minimum.reduceat(permuted, starts[rows] - first, axis=1).T
        at += len(rows)
    return out


def band_keys(sigs: np.ndarray, threshold: float, num_perm: int) -> np.ndarray:
    """(rows x bands) 64-bit keys of `MinHashLSH`'s bands for ``threshold``."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    bands, width = int(lsh.b), int(lsh.r)
    drawn = np.random.RandomState(0x5EED).randint(1, 2**62, size=width, dtype=np.int64)
    mix = (drawn.astype(np.uint64) << np.uint64(1)) | np.uint64(1)  # odd: no value is lost
    keys = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    wide = sigs.astype(np.uint64)
    for band in range(bands):
        block = wide[:, band * width : (band + 1) * width]
        keys[:, band] = (block * mix[None, :]).sum(axis=1) ^ np.uint64(band)
    return keys
