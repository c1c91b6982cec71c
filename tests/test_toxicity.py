"""The toxicity scorer with its offline default backend, alt-profanity-check (a real trained
model), through the real entry points: the registry, the stage-facing scorer, a `Stage`
writing into an embedded chDB store."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from monitor.config import Settings, ToxicitySettings
from monitor.errors import ScorerError
from monitor.events import Event, parse_event
from monitor.pipeline.rows import result_rows
from monitor.pipeline.stages import Stage
from monitor.scorers.base import Job, Scorer
from monitor.scorers.toxicity.scorer import BACKENDS, ToxicityScorer, build_toxicity_scorer
from monitor.store.embedded import EmbeddedStore
from monitor.times import now_iso
from vigil.traffic import TrafficSpec, generate_events

OFFENSIVE = [
    "Are you stupid? Read the damn instructions, idiot.",
    "Shut up and stop wasting my time with your crap, dumbass.",
    "What a moronic question. Figure it out yourself, you pathetic loser.",
    "This is bullshit, you useless piece of shit.",
    "Go to hell, you fucking moron.",
]
POLITE = [
    "Refunds go back to your original payment method within 5-7 business days.",
    "Thank you for your patience, I have updated the delivery address on your order.",
    "Hold the power button for 10 seconds to reset the headphones, then charge them.",
    "You can download the invoice under Orders > Invoice. Have a lovely day!",
    "I'm sorry the blender arrived damaged; a replacement is on its way.",
]


def _events(responses: list[str]) -> list[Event]:
    base = list(generate_events(TrafficSpec(n=len(responses), seed=3)))
    events = []
    for raw, text in zip(base, responses, strict=True):
        raw["response"]["content"] = text
        events.append(parse_event(orjson.dumps(raw)))
    return events


@pytest.fixture(scope="module")
def scorer() -> ToxicityScorer:
    return build_toxicity_scorer(ToxicitySettings(batch_size=4))


def test_registry_names_every_configurable_backend() -> None:
    assert set(BACKENDS) == {"profanity-check", "detoxify"}


def test_default_backend_is_a_real_model_that_separates_offensive_from_polite(
    scorer: ToxicityScorer,
) -> None:
    assert isinstance(scorer, Scorer)
    assert scorer.backend.name == "profanity-check"
    assert scorer.version.startswith("profanity-check-")
    probs = scorer.predict(OFFENSIVE + POLITE)
    assert probs.shape == (len(OFFENSIVE) + len(POLITE), 1)
    offensive, polite = probs[: len(OFFENSIVE), 0], probs[len(OFFENSIVE) :, 0]
    assert offensive.min() > 0.5 > polite.max()
    assert offensive.min() > polite.max() + 0.3


def test_scores_and_incidents_per_event(scorer: ToxicityScorer) -> None:
    events = _events([OFFENSIVE[0], POLITE[0]])
    results = asyncio.run(scorer.score([Job(e) for e in events]))
    by_id = {r.event_id: r for r in results}
    rude, kind = by_id[events[0].event_id], by_id[events[1].event_id]
    # One category: the headline score is written once, labelled with the category.
    assert [(s.name, s.label) for s in rude.scores] == [("toxicity", "profanity")]
    assert rude.scores[0].value > 0.5 > kind.scores[0].value
    rude_rows = result_rows(events[0], scorer.name, rude, now_iso())
    kind_rows = result_rows(events[1], scorer.name, kind, now_iso())
    (incident,) = rude_rows["incidents"]
    assert incident["risk_type"] == "toxicity"
    assert incident["category"] == "profanity"
    assert incident["source"] == "toxicity"
    assert incident["event_id"] == events[0].event_id
    assert "incidents" not in kind_rows


def test_backend_failure_becomes_scorer_error(scorer: ToxicityScorer) -> None:
    class Broken:
        name = "broken"
        version = "broken-0"
        categories: tuple[str, ...] = ("profanity",)

        def predict(self, texts: Any) -> Any:
            raise RuntimeError("model exploded")

    broken = ToxicityScorer(Broken(), ToxicitySettings())
    with pytest.raises(ScorerError, match="broken"):
        asyncio.run(broken.score([Job(_events([POLITE[0]])[0])]))


def test_stage_writes_scores_decisions_and_incidents(
    settings: Settings, embedded_store: EmbeddedStore
) -> None:
    texts = OFFENSIVE + POLITE
    events = _events(texts)
    toxicity = build_toxicity_scorer(settings.toxicity.model_copy(update={"batch_size": 3}))

    async def run() -> Stage:
        async def write(tables: dict[str, list[dict[str, Any]]]) -> None:
            for name, rows in tables.items():
                if rows:
                    await asyncio.to_thread(embedded_store.insert, name, rows)

        stage = Stage(toxicity, write, queue_size=100)
        await stage.start()
        for event in events:
            assert stage.offer(Job(event, reason="rate"))
        await stage.drain()
        await stage.stop()
        return stage

    stage = asyncio.run(run())
    assert stage.outcomes == {"scored": len(texts)}
    assert stage.stats()["texts"] == len(texts)
    scores = embedded_store.query(
        "SELECT event_id, value, label, scorer_version FROM vigil.scores FINAL "
        "WHERE scorer = 'toxicity' AND name = 'toxicity'"
    )
    assert len(scores) == len(texts)
    assert {r["scorer_version"] for r in scores} == {toxicity.version}
    value = {r["event_id"]: r["value"] for r in scores}
    offensive_ids = {e.event_id for e in events[: len(OFFENSIVE)]}
    incidents = embedded_store.query(
        "SELECT event_id, risk_type, category, source FROM vigil.incidents FINAL"
    )
    assert {r["event_id"] for r in incidents} == offensive_ids
    assert {(r["risk_type"], r["category"], r["source"]) for r in incidents} == {
        ("toxicity", "profanity", "toxicity")
    }
    assert min(value[i] for i in offensive_ids) > max(
        v for i, v in value.items() if i not in offensive_ids
    )
    decisions = embedded_store.query(
        "SELECT decision, count() AS n FROM vigil.decisions FINAL WHERE scorer = 'toxicity' "
        "GROUP BY decision"
    )
    assert decisions == [{"decision": "scored", "n": len(texts)}]
