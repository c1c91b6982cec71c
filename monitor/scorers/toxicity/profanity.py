"""The offline default toxicity backend: alt-profanity-check.

What it is: a linear SVM (calibrated to probabilities) on a bag of words, trained on
human-labelled offensive / non-offensive comments, shipped inside the
``alt-profanity-check`` wheel. It scores *profanity and offensive language*: slurs,
swearing, direct insults. It is not a full toxicity model: it does not separate threats
from insults, it misses toxicity phrased in polite words, and it can fire on a quoted
swear word. It is the default because it is a real trained model that works with no
download; use the Detoxify backend where its checkpoints can be had.

One category, ``profanity``. Tiny and fast (thousands of texts per second on one core),
so it scores the whole text, however long.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

NAME = "profanity-check"


class ProfanityCheckBackend:
    """alt-profanity-check's ``predict_prob`` behind the toxicity backend interface."""

    name = NAME
    categories: tuple[str, ...] = ("profanity",)

    def __init__(self) -> None:
        # The import loads the pickled vectorizer and model from the wheel's data folder.
        import profanity_check

        self._predict_prob: Callable[[Sequence[str]], Any] = profanity_check.predict_prob
        self.version = f"{NAME}-{profanity_check.__version__}"

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), 1)."""
        if not texts:
            return np.zeros((0, 1))
        probs = np.asarray(self._predict_prob(list(texts)), dtype=np.float64)
        return probs.reshape(-1, 1)
