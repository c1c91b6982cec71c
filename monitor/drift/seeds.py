"""Random seeds from stable inputs, so a replay and the live worker draw the same numbers."""

from __future__ import annotations

import hashlib


def seed_from(*parts: object) -> int:
    """A 64-bit seed from stable inputs (strings, numbers): same inputs, same seed.

    Python's ``hash`` is salted per process, so a digest is used instead.
    """
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
