"""The worker's Prometheus metrics, read from the pipeline at scrape time.

Nearly everything is a view of counters the pipeline keeps anyway (`Summary`, `Health`,
each stage's outcomes and scorer stats, the alert states), collected when ``/metrics``
is scraped: the hot path pays nothing for it. The one exception is judge latency, a
histogram fed by each stage result (`Stage.listeners`), because a distribution cannot
be rebuilt from totals.

Counters restart at zero with the process (Prometheus' ``rate()`` handles that). The
names, all prefixed ``vigil_``, are listed in README.md ("Operations endpoints").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.alerts import AlertEvaluator
from monitor.ops.broker import BrokerState
from monitor.pipeline import Pipeline
from monitor.scorers.base import ScoreResult

#: Judge verdict latency buckets (seconds): a hosted judge answers in about a second,
#: a local CPU judge in several, a retried or cascaded verdict in tens.
JUDGE_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _labelled(
    family: CounterMetricFamily | GaugeMetricFamily,
    values: Mapping[tuple[str, ...], float],
) -> Metric:
    """``family`` with one sample per label values (sorted: a stable exposition)."""
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _counter(
    name: str, doc: str, labels: Iterable[str], values: Mapping[tuple[str, ...], float]
) -> Metric:
    return _labelled(CounterMetricFamily(name, doc, labels=list(labels)), values)


def _gauge(
    name: str, doc: str, labels: Iterable[str], values: Mapping[tuple[str, ...], float]
) -> Metric:
    return _labelled(GaugeMetricFamily(name, doc, labels=list(labels)), values)


class PipelineCollector(Collector):
    """Every ``vigil_*`` metric but the judge latency histogram, built per scrape."""

    def __init__(self, pipeline: Pipeline, broker: BrokerState) -> None:
        self.pipeline = pipeline
        self.broker = broker

    def describe(self) -> Iterable[Metric]:
        # Nothing up front: the registry would otherwise call `collect` at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._scorers()
        yield from self._judge()
        yield from self._health()
        yield from self._broker()
        yield from self._alerts()

    def _ingest(self) -> Iterator[Metric]:
        s = self.pipeline.summary
        yield CounterMetricFamily(
            "vigil_events_read",
            "Messages read from the events topics, valid or not (rate(): events/s).",
            value=s.read,
        )
        yield CounterMetricFamily("vigil_events_stored", "Events durably stored.", value=s.stored)
        yield CounterMetricFamily(
            "vigil_events_duplicates",
            "Redelivered events skipped (same event id, same bytes).",
            value=s.duplicates,
        )
        yield CounterMetricFamily(
            "vigil_feedback_stored",
            "Feedback records stored (inline and late).",
            value=s.feedback_stored,
        )
        yield _counter(
            "vigil_dead_letters",
            "Messages dead-lettered, by reason (feedback_* for the feedback topic).",
            ["reason"],
            {(reason,): n for reason, n in s.rejected.items()},
        )
        yield _counter(
            "vigil_timers_fired",
            "Event-time timer runs that succeeded, by timer.",
            ["timer"],
            {(name,): n for name, n in s.timers_fired.items()},
        )
        watermark = self.pipeline.watermark
        if watermark is not None:
            yield GaugeMetricFamily(
                "vigil_watermark_timestamp_seconds",
                "The largest event time stored (Unix seconds); timers run on it.",
                value=watermark.timestamp(),
            )

    def _scorers(self) -> Iterator[Metric]:
        stages = self.pipeline.stages
        yield _counter(
            "vigil_decisions",
            "Sampling decisions at ingest, by scorer and decision (pending: queued for"
            " the scorer; its end is counted in vigil_scorer_outcomes).",
            ["scorer", "decision"],
            {
                (scorer, decision): n
                for scorer, counts in self.pipeline.summary.decisions.items()
                for decision, n in counts.items()
            },
        )
        yield _counter(
            "vigil_scorer_outcomes",
            "How queued jobs ended, by scorer and outcome (scored, failed, over_budget).",
            ["scorer", "outcome"],
            {
                (name, outcome): n
                for name, stage in stages.items()
                for outcome, n in stage.outcomes.items()
            },
        )
        yield _gauge(
            "vigil_stage_queue_depth",
            "Jobs waiting in each scorer stage's queue.",
            ["scorer"],
            {(name,): stage.depth for name, stage in stages.items()},
        )
        yield _gauge(
            "vigil_stage_queue_capacity",
            "Size of each scorer stage's queue.",
            ["scorer"],
            {(name,): stage.capacity for name, stage in stages.items()},
        )

    def _judge(self) -> Iterator[Metric]:
        stage = self.pipeline.stages.get("judge")
        if stage is None:
            return
        stats = stage.stats()
        yield CounterMetricFamily(
            "vigil_judge_calls", "Judge endpoint calls (retries included).", value=stats["calls"]
        )
        yield _counter(
            "vigil_judge_tokens",
            "Judge tokens billed, by kind.",
            ["kind"],
            {("prompt",): stats["prompt_tokens"], ("completion",): stats["completion_tokens"]},
        )
        yield CounterMetricFamily(
            "vigil_judge_cost", "Judge cost (judge.price_per_1k_* units).", value=stats["cost"]
        )
        yield CounterMetricFamily(
            "vigil_judge_cache_hits",
            "Verdicts answered from the verdict cache.",
            value=stats["cache_hits"] + stats["cache_hits_store"],
        )
        yield _counter(
            "vigil_judge_failures",
            "Failed judge calls, by code.",
            ["code"],
            {(code,): n for code, n in stats.get("failure_codes", {}).items()},
        )

    def _health(self) -> Iterator[Metric]:
        h = self.pipeline.health
        yield GaugeMetricFamily(
            "vigil_store_up", "1 while the store accepts writes.", value=float(h.store_ok)
        )
        yield GaugeMetricFamily(
            "vigil_ingest_backpressured",
            "1 while ingest waits for the store.",
            value=float(h.backpressured),
        )
        yield CounterMetricFamily(
            "vigil_store_write_retries",
            "Failed store write attempts (each retried).",
            value=h.store_retries,
        )
        yield _counter(
            "vigil_timer_errors",
            "Event-time timer runs that failed, by timer.",
            ["timer"],
            {(name,): n for name, n in h.timer_errors.items()},
        )

    def _broker(self) -> Iterator[Metric]:
        b = self.broker
        yield GaugeMetricFamily(
            "vigil_broker_up",
            "1 while the events consumer has a broker connection up.",
            value=float(b.status == "up"),
        )
        yield _gauge(
            "vigil_consumer_lag",
            "Messages behind the newest offset, per assigned partition (committed offsets).",
            ["topic", "partition"],
            {(topic, str(partition)): n for (topic, partition), n in b.lag.items()},
        )
        if b.reported_at is not None:
            yield GaugeMetricFamily(
                "vigil_consumer_report_age_seconds",
                "Age of the consumer's last lag report (they come with fetches).",
                value=max(0.0, time.time() - b.reported_at),
            )

    def _alerts(self) -> Iterator[Metric]:
        evaluator = self.pipeline.timers.get("alerts")
        if not isinstance(evaluator, AlertEvaluator):
            return
        firing: dict[tuple[str, ...], float] = {(rule.name,): 0 for rule in evaluator.rules}
        for (rule, _segment), state in evaluator.states.items():
            if state.state == "firing":
                firing[(rule,)] = firing.get((rule,), 0) + 1
        yield _gauge("vigil_alerts_firing", "Segments firing, per alert rule.", ["rule"], firing)


class PipelineMetrics:
    """The registry ``/metrics`` renders: the pipeline, judge latency, the process."""

    def __init__(self, pipeline: Pipeline, broker: BrokerState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(pipeline, broker))
        ProcessCollector(registry=self.registry)  # memory, CPU, open files of the worker
        self.judge_latency: Histogram | None = None
        judge = pipeline.stages.get("judge")
        if judge is not None:
            self.judge_latency = Histogram(
                "vigil_judge_latency_seconds",
                "Time to a fresh judge verdict (all its calls: pairwise orders, repairs,"
                " the cascade); cached verdicts are not timed.",
                buckets=JUDGE_LATENCY_BUCKETS,
                registry=self.registry,
            )
            judge.listeners.append(self._observe)

    def _observe(self, result: ScoreResult) -> None:
        judgment = result.judgment
        if judgment is not None and not judgment.cached and self.judge_latency is not None:
            self.judge_latency.observe(judgment.latency_ms / 1000.0)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
