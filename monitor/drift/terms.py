"""A cluster's top terms: the words that set its prompts apart from the rest of the window.

A drift report names its shifted clusters so that a person can tell what moved without
reading embeddings: "crypto, wallet, bitcoin" says more than "cluster_3". A term scores by
how many more of the cluster's prompts than of the other prompts contain it (document
frequencies, so one long prompt repeating a word does not dominate), scaled by the log
ratio of those frequencies, so words common everywhere ("order", "please") rank low.
Pure; no store.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z][a-z0-9'-]{2,}")
#: Function words and support-chat filler: frequent in any cluster, telling of none.
_STOP_WORDS = """
    about above after again against all also and any are aren't because been before being
    below between both but can can't cannot could couldn't did didn't does doesn't doing
    don't down during each few for from further had hadn't has hasn't have haven't having
    her here hers herself him himself his how i'd i'll i'm i've into isn't it's its itself
    just let's me more most mustn't myself nor not now off once only other ought our ours
    ourselves out over own same shan't she she'd she'll she's should shouldn't some such
    than that that's the their theirs them themselves then there there's these they they'd
    they'll they're they've this those through too under until very was wasn't we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves get got hello please thanks thank yes
"""
_STOP = frozenset(_STOP_WORDS.split())


def _doc_terms(text: str) -> set[str]:
    return {w.strip("'-") for w in _WORD.findall(text.lower())} - _STOP


def _doc_freq(texts: Iterable[str]) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        counts.update(_doc_terms(text))
        n += 1
    return counts, n


def top_terms(cluster: Sequence[str], rest: Sequence[str], k: int = 5) -> list[str]:
    """Up to ``k`` terms of ``cluster``'s texts that are rarer in ``rest``, best first.

    A term must be in at least two of the cluster's texts (or its only one): a word of a
    single prompt is an anecdote, not a topic. Ties break alphabetically (deterministic).
    """
    inside, n_in = _doc_freq(cluster)
    if not n_in:
        return []
    outside, n_out = _doc_freq(rest)
    floor = min(2, n_in)
    scored = []
    for term, count in inside.items():
        if count < floor:
            continue
        p = count / n_in
        q = outside[term] / n_out if n_out else 0.0
        if p <= q:
            continue
        # Additive smoothing keeps the ratio finite for a term absent from the rest.
        score = (p - q) * math.log((p + 0.01) / (q + 0.01))
        scored.append((-score, term))
    return [term for _, term in sorted(scored)[:k]]
