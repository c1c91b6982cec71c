"""Building a pipeline from settings: which scorers and timers run, from explicit registries.

Both `vigil replay` and the live worker call `build_pipeline`, so they run the same parts.
A scorer or timer is added by registering a factory here, never by import side effects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from monitor.config import Settings
from monitor.pipeline import Pipeline
from monitor.pipeline.stages import ResultsOut, Stage
from monitor.store.base import Store

if TYPE_CHECKING:
    from monitor.scorers.base import Scorer


ScorerFactory = Callable[[Settings, Store], "Scorer"]


def _toxicity(settings: Settings, store: Store) -> Scorer:
    from monitor.scorers.toxicity import build_toxicity_scorer

    return build_toxicity_scorer(settings.toxicity)


def _embedding(settings: Settings, store: Store) -> Scorer:
    from monitor.scorers.embeddings import build_embedding_scorer

    return build_embedding_scorer(settings.embedding)


def _judge(settings: Settings, store: Store) -> Scorer:
    from monitor.scorers.judge import build_judge_scorer
    from monitor.store.queries.judge import stored_verdicts

    # The verdict cache's persistent layer is the pipeline's own store (table judgments),
    # so a redelivered event is answered from there after a restart.
    # judge_settings(): the judge never gets text that privacy.redact_pii keeps from the store.
    lookup = partial(stored_verdicts, store)
    return build_judge_scorer(settings.judge_settings(), verdict_lookup=lookup)


#: name -> (is it enabled in these settings, factory(settings, the pipeline's store), its
#: queue size)
SCORERS: dict[str, tuple[Callable[[Settings], bool], ScorerFactory, Callable[[Settings], int]]] = {
    "toxicity": (lambda s: s.toxicity.enabled, _toxicity, lambda s: s.toxicity.queue_size),
    "embedding": (lambda s: s.embedding.enabled, _embedding, lambda s: s.embedding.queue_size),
    "judge": (lambda s: s.judge.enabled, _judge, lambda s: s.judge.queue_size),
}

TimerFactory = Callable[[Settings, Store], "tuple[float, Callable[..., object]] | None"]


def _rollups(settings: Settings, store: Store) -> tuple[float, Callable[..., object]]:
    from monitor.store.rollups import rollup_timer

    return rollup_timer(settings, store)


def _drift(settings: Settings, store: Store) -> tuple[float, Callable[..., object]] | None:
    from monitor.drift.job import build_drift_timer

    return build_drift_timer(settings, store)


def _alerts(settings: Settings, store: Store) -> tuple[float, Callable[..., object]] | None:
    from monitor.alerts import alert_timer

    return alert_timer(settings, store)


def _capture(settings: Settings, store: Store) -> tuple[float, Callable[..., object]] | None:
    from monitor.evalset.capture import capture_timer

    return capture_timer(settings, store)


#: Event-time timers: name -> factory(settings, store) returning (period in seconds, async
#: fn(as_of)), or None when disabled. They fire in this order at each boundary, so a drift
#: report written at `as_of` is seen by the alert evaluator at the same `as_of`, and an
#: alert raised then is there for failure capture (its examples are failures).
TIMERS: dict[str, TimerFactory] = {
    "rollups": _rollups,
    "drift": _drift,
    "alerts": _alerts,
    "capture": _capture,
}


def enabled_scorers(settings: Settings) -> list[str]:
    return [name for name, (enabled, _, _) in SCORERS.items() if enabled(settings)]


def _results_out(settings: Settings) -> ResultsOut | None:
    """The OTLP exporter of evaluation results, when ``export.otlp_endpoint`` is set."""
    if not settings.export.enabled:
        return None
    from monitor.export import OtlpResultsExporter  # protobuf and httpx only when on

    return OtlpResultsExporter(settings.export)


def build_pipeline(settings: Settings, store: Store, *, replay: bool = False) -> Pipeline:
    """The pipeline the settings describe. ``replay`` settles scorer queues before timers
    and bounds event time by the stream alone; live, by the wall clock too."""
    clock = None if replay else time.time
    pipeline = Pipeline(
        settings, store, drain_before_timers=replay, clock=clock, retry_forever=not replay
    )
    stages = []
    results = _results_out(settings)
    for name in enabled_scorers(settings):
        _, factory, queue_size = SCORERS[name]
        scorer = factory(settings, store)
        stages.append(Stage(scorer, pipeline.write, queue_size(settings), results))
    pipeline.set_stages(stages)
    for name, timer_factory in TIMERS.items():
        made = timer_factory(settings, store)
        if made is not None:
            every_s, fn = made
            pipeline.add_timer(name, every_s, fn)  # type: ignore[arg-type]
    return pipeline
