"""Batch-wide gates for the every-event checks: which texts of a batch contain a needle.

The checks guard their regular expressions with cheap tests (a hint substring, a digit
run) that rule out nearly every text. Run per text, each test is a Python call that
costs more than the scan it makes. Here the texts of a whole batch are joined once and
each test scans the joined text in C; only the rare hit is mapped back to its text (by
bisection over where each text ends) and, from there, the scan jumps to the next text.

Exactness: texts are joined with NUL, which no needle and no gate pattern may contain,
so a match never spans two texts. A text is reported iff testing it alone would find
the needle (or pattern) in it: tests/test_heuristics.py checks this against the
per-text tests.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

SEPARATOR = "\x00"


class Joined:
    """A batch of texts joined by `SEPARATOR`, with where each one ends."""

    __slots__ = ("ends", "text")

    def __init__(self, texts: Sequence[str]) -> None:
        self.text = SEPARATOR.join(texts)
        # ends[i]: index of the separator after text i (len(text) for the last one).
        self.ends = [end + i for i, end in enumerate(accumulate(map(len, texts)))]

    def containing(self, needles: Sequence[str], hits: list[bool]) -> None:
        """Set ``hits[i]`` for every text ``i`` that contains one of ``needles``."""
        ends, find = self.ends, self.text.find
        for needle in needles:
            if SEPARATOR in needle or not needle:
                raise ValueError(f"needle {needle!r} cannot be scanned for")
            at = find(needle)
            while at != -1:
                i = bisect_right(ends, at)
                hits[i] = True
                if i + 1 >= len(ends):
                    break
                at = find(needle, ends[i] + 1)

    def matching(self, pattern: re.Pattern[str], hits: list[bool]) -> None:
        """Set ``hits[i]`` for every text ``i`` in which ``pattern`` finds a match.

        ``pattern`` must not be able to match `SEPARATOR`, nor look across it (no
        lookarounds or anchors), so each match lies inside one text.
        """
        ends = self.ends
        at = 0
        search = pattern.search
        while (match := search(self.text, at)) is not None:
            i = bisect_right(ends, match.start())
            hits[i] = True
            if i + 1 >= len(ends):
                break
            at = ends[i] + 1
