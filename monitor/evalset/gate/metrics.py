"""Task metrics of an answer against an item's ``reference``.

- exact match and token F1 after SQuAD-style normalisation (Unicode NFKC, case-folded,
  punctuation and the articles a/an/the removed, white space collapsed);
- ROUGE-L F-measure (``rouge_score``, no stemming: stems would make "refund" and
  "refunding" equal, which a support answer may not be);
- semantic similarity: the cosine of the two texts' MiniLM sentence embeddings. This is
  embedding cosine (MiniLM), not BERTScore: one vector per text, no token alignment.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_SPACE = re.compile(r"\s+")

SEMANTIC_LABEL = "embedding cosine (MiniLM), not BERTScore"


def normalise_answer(text: str) -> str:
    """The form answers are compared in for exact match and F1."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    no_punct = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return _SPACE.sub(" ", _ARTICLES.sub(" ", no_punct)).strip()


def exact_match(answer: str, reference: str) -> float:
    return 1.0 if normalise_answer(answer) == normalise_answer(reference) else 0.0


def token_f1(answer: str, reference: str) -> float:
    """F1 of the normalised tokens' multiset overlap (1.0 when both are empty)."""
    predicted = normalise_answer(answer).split()
    expected = normalise_answer(reference).split()
    if not predicted or not expected:
        return 1.0 if predicted == expected else 0.0
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


_ROUGE: Any = None


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens)."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(_ROUGE.score(reference, answer)["rougeL"].fmeasure)


class SemanticSimilarity:
    """Cosine of MiniLM embeddings; the model loads on first use (seconds, torch)."""

    def __init__(self, model_path: str = "", device: str = "cpu") -> None:
        self._model_path = model_path
        self._device = device
        self._embedder: Any = None

    @property
    def name(self) -> str:
        return str(getattr(self._embedder, "name", "all-MiniLM-L6-v2"))

    def similarities(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        """Cosine of each answer with its reference (vectors are unit length)."""
        if not answers:
            return []
        if self._embedder is None:
            # Lazy: the gate imports torch only when a run has references to compare.
            from monitor.scorers.embeddings import SentenceEmbedder

            self._embedder = SentenceEmbedder(self._model_path, self._device)
        vectors = self._embedder.encode([*answers, *references])
        n = len(answers)
        return [float(vectors[i] @ vectors[n + i]) for i in range(n)]
