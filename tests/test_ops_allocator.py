"""The worker's allocator housekeeping (`monitor.ops.allocator`) on this machine's glibc.

Run in a fresh interpreter so the process's heap is only what the test builds: a
fragmented arena (blocks under the mmap threshold, every other one freed, the last kept
so the arena's top stays in use) is exactly what `malloc_trim` is for.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError

_FRAGMENT = textwrap.dedent(
    """
    import ctypes, threading
    from monitor.ops.allocator import limit_arenas, release_free_memory

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    assert limit_arenas(2)
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    kept = []

    def churn():  # in a thread: its own arena, as in the worker
        blocks = [libc.malloc(64 * 1024) for _ in range(4000)]  # ~256 MB, under mmap
        for i, b in enumerate(blocks):
            ctypes.memset(b, 1, 64 * 1024)
        for i, b in enumerate(blocks):
            (kept.append(b) if i % 64 == 63 else libc.free(b))

    t = threading.Thread(target=churn); t.start(); t.join()
    before = rss_mb()
    assert release_free_memory()
    print(before, rss_mb())
    """
)


def test_release_free_memory_returns_a_fragmented_arena_to_the_kernel() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after = float(out[0]), float(out[1])
    # 63 of every 64 blocks were freed: about 250 MB sits free inside the arena.
    assert before > 200
    assert after < before - 150


def test_allocator_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="malloc_arenas"):
        load_settings(overrides={"ops": {"malloc_arenas": -1}})
    settings = load_settings(overrides={"ops": {"release_memory_every_s": 0}})
    assert settings.ops.release_memory_every_s == 0
