"""The C allocator's share of a long-running worker's memory: few arenas, free pages given back.

Why this exists: a 30-minute soak at 2,000 events/s grew the worker's RSS by 4-5 MB a
minute while chDB's own memory tracker stayed near 70 MB. ``/proc/PID/smaps`` put the
growth in glibc's per-thread malloc arenas (anonymous 64 MB-aligned heaps). The worker
runs ~170 threads (chDB's pools, torch, the asyncio executor); glibc hands them up to
eight arenas per core, and memory freed inside an arena stays mapped until the arena's
top is free. Multi-MB insert bodies and tokenizer buffers, allocated on one thread and
freed on another, leave exactly that kind of hole.

Two standard remedies, both glibc-only and harmless elsewhere (they do nothing):

- `limit_arenas` caps the arena count (``M_ARENA_MAX``, what the ``MALLOC_ARENA_MAX``
  environment variable sets), called at worker start before the thread pools grow;
- `release_free_memory` runs ``malloc_trim(0)``, which returns every whole free page
  inside every arena to the kernel (``madvise``); the worker calls it once a minute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger("vigil.ops.allocator")

#: glibc's mallopt parameter for the arena cap (malloc.h).
_M_ARENA_MAX = -8


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        # Both symbols exist only in glibc (musl and macOS have neither).
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas at ``count`` for threads that allocate from now on;
    False where the C library is not glibc or refuses."""
    libc = _glibc()
    if libc is None or count < 1:
        return False
    done = bool(libc.mallopt(_M_ARENA_MAX, count))
    log.debug("malloc arenas capped", extra={"arenas": count, "applied": done})
    return done


def release_free_memory() -> bool:
    """Give free pages of every malloc arena back to the kernel; True when some were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
