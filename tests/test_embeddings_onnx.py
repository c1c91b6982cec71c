"""``embedding.backend: onnx``: the int8 ONNX export of the bundled MiniLM agrees with the
torch model through the real scorer class, and `vigil replay` (a child process) stores its
vectors. The export is built once per test session into a scratch cache (a few seconds)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.config import EmbeddingSettings, load_settings, write_settings_file
from monitor.events import parse_event
from monitor.scorers.base import Job
from monitor.scorers.embeddings import BUNDLED_NAME, EmbeddingScorer, build_embedding_scorer
from monitor.store.embedded import EmbeddedStore
from vigil.traffic import TrafficSpec, generate_events, generate_lines

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "traffic"


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_scorer(onnx_cache: Path) -> EmbeddingScorer:
    return build_embedding_scorer(
        EmbeddingSettings(backend="onnx", onnx_cache_dir=onnx_cache, batch_size=16)
    )


def _prompts(n: int) -> list[str]:
    """Real prompts (the AlpacaEval instructions) when the dev data is there, else traffic."""
    files = sorted(DATA.glob("*.jsonl")) if DATA.is_dir() else []
    if files:
        lines = files[0].read_bytes().splitlines()
        return [orjson.loads(line)["instruction"] for line in lines[:: len(lines) // n]][:n]
    return [e["request"]["messages"][-1]["content"] for e in generate_events(TrafficSpec(n=n))]


def test_onnx_vectors_agree_with_torch_through_the_scorer(onnx_scorer: EmbeddingScorer) -> None:
    torch_scorer = build_embedding_scorer(EmbeddingSettings(batch_size=16))
    prompts = _prompts(50)
    events = []
    for i, (prompt, raw) in enumerate(
        zip(prompts, generate_events(TrafficSpec(n=50)), strict=True)
    ):
        raw["request"]["messages"][-1]["content"] = prompt
        raw["event_id"] = f"e{i}"
        events.append(parse_event(orjson.dumps(raw)))
    jobs = [Job(e) for e in events]

    def vectors(scorer: EmbeddingScorer) -> np.ndarray:
        results = asyncio.run(scorer.score(jobs))
        by_id = {r.event_id: r.embeddings[0].vector for r in results}
        return np.array([by_id[e.event_id] for e in events], dtype=np.float32)

    onnx, torch = vectors(onnx_scorer), vectors(torch_scorer)
    assert onnx.shape == torch.shape == (50, 384)
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(onnx * torch, axis=1)
    assert cosine.mean() >= 0.99, cosine
    assert cosine.min() >= 0.97, cosine
    # Same model name (drift compares vectors by embedder), its own scorer version.
    assert onnx_scorer.embedder.name == BUNDLED_NAME
    assert onnx_scorer.version != torch_scorer.version
    # Edge cases the torch backend handles: empty text, no texts, a text past 256 tokens.
    edge = onnx_scorer.embedder.encode(["", "a much longer text " * 200])
    np.testing.assert_allclose(np.linalg.norm(edge, axis=1), 1.0, atol=1e-5)
    assert onnx_scorer.embedder.encode([]).shape == (0, 384)


def test_vigil_replay_with_the_onnx_backend_stores_embeddings(
    onnx_scorer: EmbeddingScorer, onnx_cache: Path, tmp_path: Path
) -> None:
    # onnx_scorer first: the export is then cached and the child only loads it.
    spec = TrafficSpec(n=60, seed=5)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in generate_lines(spec)))
    settings = load_settings(overrides={
        "store": {"data_dir": str(tmp_path / "data")},
        "toxicity": {"enabled": False},
        "judge": {"enabled": False},
        "embedding": {"backend": "onnx", "onnx_cache_dir": str(onnx_cache)},
        "sampling": {"rates": {"embedding": 1.0, "toxicity": 0.0, "judge": 0.0}},
    })  # fmt: skip
    config = write_settings_file(settings, tmp_path / "vigil.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--config", str(config), "replay", str(source)],
        capture_output=True, text=True, check=False,
        env={**env, "VIGIL_LOG_LEVEL": "INFO", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exporting the embedding model" not in done.stderr  # it used the cached export

    store = EmbeddedStore(settings.store.data_dir, settings.store.database)
    try:
        rows = store.query("SELECT event_id, vector FROM vigil.embeddings FINAL WHERE "
                           "kind = 'prompt' ORDER BY event_id")  # fmt: skip
        events = store.query("SELECT event_id, prompt FROM vigil.events FINAL")
        prompts = {r["event_id"]: r["prompt"] for r in events}
    finally:
        store.close()
    assert len(rows) == spec.n
    stored = np.array([r["vector"] for r in rows], dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-4)
    # What the child stored is what the ONNX model gives in this process (torch's vectors
    # differ by more: cosine about 0.99).
    again = onnx_scorer.embedder.encode([prompts[r["event_id"]] for r in rows])
    np.testing.assert_allclose(stored, again, atol=1e-4)
