"""Embedding near-duplicates for the leakage check (``vigil evalset check --embeddings``).

A near-copy with a word changed every few words shares no 13-gram, yet it is the same
question. Here every eval prompt (its user text) and every training text (each field of
each line, as in the n-gram check) is embedded with the sentence embedder (the bundled
MiniLM unless ``embedding.model_path`` says otherwise); a pair at or above
``leakage.embedding_cosine`` is a near-duplicate.

The training side is embedded in chunks of ``leakage.embedding_chunk`` texts, each
compared with all eval prompts in one matrix product and then dropped, so memory stays
at about ``chunk x (dimension + items)`` floats whatever the size of the file. The cost
is the model, about linear in the tokens: MiniLM reads up to 256 tokens of a text, and
on two busy CPU cores it embedded 13 texts a second of 100-250 words (bench data: 2,000
lines, 3,500 texts in 270 s); short prompts go several times faster. So on a CPU this
is practical for training files of up to ~10,000 lines (minutes); for larger corpora
run it on a sample, or on a GPU (``embedding.device``). Texts are cut at 2,000
characters (past the model's 256 tokens) before tokenising.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from monitor.evalset.items import EvalItem
from monitor.evalset.leakage import MAX_MATCHES, ItemNear, NearMatch, Progress
from monitor.evalset.training import Source, prompt_texts

if TYPE_CHECKING:
    from monitor.config import EmbeddingSettings

log = logging.getLogger("vigil.evalset.leakage")

MAX_CHARS = 2000
TICK_TEXTS = 256


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text."""
        ...


def load_embedder(settings: EmbeddingSettings) -> Encoder:
    """The sentence embedder the embedding settings describe (imported here: torch)."""
    from monitor.scorers.embeddings import SentenceEmbedder
    from monitor.scorers.torch_threads import configure_torch_threads

    configure_torch_threads(settings.torch_threads)
    return SentenceEmbedder(settings.model_path, settings.device, settings.batch_size)


class NearDuplicates:
    """Callable for `check_leakage`'s ``embeddings``: the items with a near-duplicate."""

    def __init__(self, embedder: Encoder, cosine: float, chunk: int = 1024) -> None:
        self.embedder = embedder
        self.cosine = cosine
        self.chunk = chunk
        self.texts = 0

    def __call__(
        self, items: Sequence[EvalItem], sources: Sequence[Source], progress: Progress | None
    ) -> list[ItemNear]:
        started = time.perf_counter()
        prompts = self.embedder.encode(["\n".join(prompt_texts(i))[:MAX_CHARS] for i in items])
        # item -> [lines matched, best matches (bounded)]
        found: dict[int, tuple[list[int], list[NearMatch]]] = {}
        for source in sources:
            task = f"embeddings {source.label}"
            texts: list[str] = []
            lines: list[int] = []
            number = 0
            for number, line_texts in source.texts(lambda _n, _r: None):
                for text in line_texts:
                    if text.strip():
                        texts.append(text[:MAX_CHARS])
                        lines.append(number)
                # Only between lines, so one line's texts are never split over two chunks.
                if len(texts) >= self.chunk:
                    self._compare(prompts, texts, lines, source, found)
                    texts, lines = [], []
                    if progress is not None:
                        progress(task, source.position(), source.total, source.unit, number)
            if texts:
                self._compare(prompts, texts, lines, source, found)
            if progress is not None:
                done = source.total or source.position()
                progress(task, done, source.total, source.unit, number)
        near = []
        for i, (count, matches) in found.items():
            matches.sort(key=lambda m: -m.cosine)
            near.append(
                ItemNear(
                    item_id=items[i].id,
                    split=items[i].split,
                    lines=count[0],
                    best=matches[0].cosine,
                    matches=matches[:MAX_MATCHES],
                )
            )
        near.sort(key=lambda x: (-x.best, x.item_id))
        log.info(
            "embedding near-duplicates done",
            extra={
                "texts": self.texts,
                "near_duplicates": len(near),
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return near

    def _compare(
        self,
        prompts: np.ndarray,
        texts: list[str],
        lines: list[int],
        source: Source,
        found: dict[int, tuple[list[int], list[NearMatch]]],
    ) -> None:
        vectors = self.embedder.encode(texts)
        self.texts += len(texts)
        similarity = vectors @ prompts.T  # (texts, items): unit vectors, so cosines
        rows, cols = np.nonzero(similarity >= self.cosine)
        best: dict[tuple[int, int], float] = {}  # (item, line) -> best over the line's texts
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            key = (c, lines[r])
            best[key] = max(best.get(key, -1.0), float(similarity[r, c]))
        for (c, line), value in best.items():
            count, matches = found.setdefault(c, ([0], []))
            count[0] += 1
            matches.append(
                NearMatch(
                    source=source.label,
                    line=line,
                    other_id=source.other_id(line),
                    cosine=round(min(value, 1.0), 4),
                )
            )
            if len(matches) > 4 * MAX_MATCHES:  # keep the best, bounded
                matches.sort(key=lambda m: -m.cosine)
                del matches[MAX_MATCHES:]
