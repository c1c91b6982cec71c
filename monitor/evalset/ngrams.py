"""Long n-gram overlap through an index: the eval set's n-grams in a dict, training text
looked up against it one line at a time, never item by item.

Words: the text NFKC-normalised and case-folded, split into runs of word characters
(``\\w+``), so punctuation, spacing and casing never hide a copy; each word as UTF-8
bytes. Pure-ASCII text, the common case, takes a faster path with the same result: the
encoded text through one ``bytes.translate`` (upper to lower case, every other non-word
byte to a space) and ``bytes.split``, which is a third cheaper than the same on ``str``.

The index holds every *window* of ``window`` words of every eval segment (a user
message), mapped to where it occurs. A training segment is looked up only at positions
``0, stride, 2*stride, ...`` with ``stride = n - window + 1``: any run of ``n`` shared
words contains one such aligned window, so no n-gram overlap is missed, and the lookups
per line drop ``stride``-fold. A window found is only a candidate: the shared run is
then extended word by word on both sides and kept only when it reaches ``n`` words. The
dict compares the words themselves on a hash match, and the extension compares words
again, so a hash collision can never make a hit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

Words = Sequence[bytes]
Gram = tuple[bytes, ...]
#: Where a window occurs in the eval set: (item, segment, position) for each occurrence.
Where = list[tuple[int, int, int]]
#: Aligned windows of one training segment found in the index: (position, where).
Found = list[tuple[int, Where]]

_WORD = re.compile(r"\w+")
_ASCII = (
    bytes(
        ord(chr(c).lower()) if chr(c).isalnum() or chr(c) == "_" else ord(" ") for c in range(128)
    )
    + b" " * 128
)


def words(text: str) -> list[bytes]:
    """The normalised words of ``text`` (see the module docstring)."""
    if text.isascii():
        return text.encode().translate(_ASCII).split()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [word.encode() for word in _WORD.findall(folded)]


def window_for(n: int) -> int:
    """Words per indexed window for n-grams of ``n`` words.

    Shorter windows mean fewer lookups per training line (a larger stride) but more
    candidates to extend on common phrases; two thirds of ``n`` (at least 8, at most
    ``n``) measured best on bench/evalset.py's text: for n = 13, 9 words (stride 5) beat
    8, 10 and 11 (7 and 13 were a fifth and two fifths slower).
    """
    return min(n, max(8, -(-2 * n // 3)))


@dataclass(frozen=True)
class Overlap:
    """The longest run of words one training line shares with one eval item."""

    item: int
    """Index of the item in the list the index was built from."""
    longest: int
    """Words in the longest shared run (at least ``n``)."""
    span: Gram
    """Those words."""


class NgramIndex:
    """The n-gram windows of a few thousand eval items, for lookups of training text."""

    def __init__(self, n: int, items: Sequence[Sequence[Words]]) -> None:
        """``items[i]`` is the list of segments (word tuples) of item ``i``."""
        self.n = n
        self.window = window_for(n)
        self.stride = n - self.window + 1
        self.items = [list(segments) for segments in items]
        self._table: dict[Gram, Where] = {}
        self._grams: dict[int, set[Gram]] = {}
        vocabulary: dict[bytes, bytes] = {}
        w = self.window
        for i, segments in enumerate(self.items):
            for s, seg in enumerate(segments):
                # One bytes object per distinct word keeps the table small.
                seg = tuple(vocabulary.setdefault(x, x) for x in seg)
                segments[s] = seg
                if len(seg) < n:
                    continue
                for q in range(len(seg) - w + 1):
                    self._table.setdefault(seg[q : q + w], []).append((i, s, q))
        self.get = self._table.get
        self.slicers = [slice(j, None, self.stride) for j in range(w)]

    def checkable(self, item: int) -> bool:
        """Whether item ``item`` has a segment of at least ``n`` words (shorter ones can
        never share an n-gram)."""
        return any(len(seg) >= self.n for seg in self.items[item])

    def __len__(self) -> int:
        return len(self._table)

    def any_window(self, segment: Words) -> bool:
        """Whether any aligned window of a training segment is in the index.

        The hot path, and most training text finds nothing: the aligned windows are
        zipped from ``window`` strided slices and looked up without leaving C (zip
        reuses its tuple, so nothing is allocated per window). The check's loop inlines
        this expression (a method call less per text); keep the two alike.
        """
        return any(map(self.get, zip(*map(segment.__getitem__, self.slicers), strict=False)))

    def locate(self, segment: Words) -> Found:
        """The aligned windows of a training segment that are in the index, with where
        they occur in the eval set (for a segment `any_window` said yes to)."""
        w, get = self.window, self.get
        found: Found = []
        for p in range(0, len(segment) - w + 1, self.stride):
            where = get(tuple(segment[p : p + w]))
            if where is not None:
                found.append((p, where))
        return found

    def confirm(self, segment: Words, found: Found) -> dict[int, Overlap]:
        """Extend each candidate window of ``segment`` to the longest shared run; the items
        with a run of at least ``n`` words, and their longest run."""
        best: dict[int, Overlap] = {}
        # (item, segment, p - q) -> where the run last extended on that diagonal ends:
        # a window inside it adds nothing, so repetitive text costs linear, not square.
        covered: dict[tuple[int, int, int], int] = {}
        w = self.window
        for p, where in found:
            for i, s, q in where:
                if covered.get((i, s, p - q), -1) >= p + w:
                    continue
                other = self.items[i][s]
                left = 0
                while p > left and q > left and segment[p - left - 1] == other[q - left - 1]:
                    left += 1
                right = 0
                end_t, end_o = len(segment), len(other)
                while (
                    p + w + right < end_t
                    and q + w + right < end_o
                    and segment[p + w + right] == other[q + w + right]
                ):
                    right += 1
                length = left + w + right
                covered[(i, s, p - q)] = p + w + right
                if length >= self.n and (i not in best or length > best[i].longest):
                    best[i] = Overlap(i, length, tuple(segment[p - left : p + w + right]))
        return best

    def shared_ngrams(self, item: int, segments: Sequence[Words]) -> int:
        """Distinct n-grams that ``segments`` (one training line) share with ``item``;
        computed only for confirmed hits, so the sets can be built on demand."""
        grams = self._grams.get(item)
        if grams is None:
            grams = {g for seg in self.items[item] for g in ngrams(seg, self.n)}
            self._grams[item] = grams
        line = {g for seg in segments for g in ngrams(seg, self.n)}
        return len(grams & line)


def ngrams(segment: Words, n: int) -> list[Gram]:
    """Every n-gram of ``segment`` (none when it is shorter than ``n``)."""
    return [tuple(segment[p : p + n]) for p in range(len(segment) - n + 1)]
