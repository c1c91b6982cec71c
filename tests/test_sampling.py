"""The sampler: deterministic, rate-accurate, priority-aware, budgeted in event time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson

from monitor.config import SamplingOverride, SamplingSettings
from monitor.events import Event, parse_event
from monitor.pipeline.sampling import Sampler, TokenBucket, sample_point


def _event(
    i: int,
    *,
    route: str = "support/refunds",
    model: str = "m",
    rating: int | None = None,
    ts: datetime | None = None,
) -> Event:
    data = {
        "event_id": f"e-{i}",
        "ts": (ts or datetime(2026, 11, 22, 8, tzinfo=UTC) + timedelta(seconds=i)).isoformat(),
        "model": model,
        "route": route,
        "request": {"messages": [{"role": "user", "content": "q"}]},
        "response": {"content": "a"},
    }
    if rating is not None:
        data["feedback"] = {"rating": rating}
    return parse_event(orjson.dumps(data))


def _no_budget(**kw: object) -> SamplingSettings:
    return SamplingSettings(budget_per_minute={}, **kw)


def test_same_event_same_decision_across_samplers() -> None:
    settings = _no_budget(rates={"judge": 0.3})
    a, b = Sampler(settings, ["judge"]), Sampler(settings, ["judge"])
    for i in range(500):
        event = _event(i)
        assert a.decide(event, []) == b.decide(event, [])


def test_rate_is_honoured_and_samples_are_nested() -> None:
    sampler = Sampler(_no_budget(rates={"judge": 0.1, "embedding": 0.5}), ["judge", "embedding"])
    counts: Counter[tuple[str, str]] = Counter()
    both = 0
    n = 20_000
    for i in range(n):
        decisions = {d.scorer: d.decision for d in sampler.decide(_event(i), [])}
        counts.update(decisions.items())
        both += decisions == {"judge": "pending", "embedding": "pending"}
    assert abs(counts[("judge", "pending")] / n - 0.1) < 0.01
    assert abs(counts[("embedding", "pending")] / n - 0.5) < 0.015
    # One hash for all scorers: every judged event is also embedded (nested samples).
    assert both == counts[("judge", "pending")]


def test_sample_point_is_uniform_enough() -> None:
    points = [sample_point(f"id-{i}") for i in range(10_000)]
    deciles = Counter(int(p * 10) for p in points)
    assert all(900 < deciles[d] < 1100 for d in range(10))


def test_overrides_most_specific_wins() -> None:
    settings = _no_budget(
        rates={"judge": 0.0},
        overrides=[
            SamplingOverride(scorer="judge", rate=1.0, route="support/refunds"),
            SamplingOverride(scorer="judge", rate=0.0, route="support/refunds", model="canary"),
        ],
    )
    sampler = Sampler(settings, ["judge"])
    assert sampler.rate("judge", "support/refunds", "m") == 1.0
    assert sampler.rate("judge", "support/refunds", "canary") == 0.0
    assert sampler.rate("judge", "support/billing", "m") == 0.0
    assert sampler.decide(_event(1, route="support/refunds"), [])[0].decision == "pending"


def test_priority_rules_bypass_the_rate() -> None:
    sampler = Sampler(_no_budget(rates={"judge": 0.0}), ["judge"])
    assert sampler.decide(_event(1), [])[0].decision == "sampled_out"
    negative = sampler.decide(_event(2, rating=-1), [])[0]
    assert negative.decision == "pending" and negative.reason == "priority:negative_feedback"
    failed = sampler.decide(_event(3), ["truncated"])[0]
    assert failed.decision == "pending" and failed.reason == "priority:failed_check"
    off = Sampler(
        _no_budget(rates={"judge": 0.0}, priority_failed_heuristic=False), ["judge"]
    ).decide(_event(3), ["truncated"])[0]
    assert off.decision == "sampled_out"


def test_budget_is_a_token_bucket_in_event_time() -> None:
    settings = SamplingSettings(
        rates={"judge": 1.0}, budget_per_minute={"judge": 60.0}, budget_burst={"judge": 5.0}
    )
    sampler = Sampler(settings, ["judge"])
    start = datetime(2026, 11, 22, 8, tzinfo=UTC)
    # Ten events in the same second: the burst of 5 passes, the rest is over budget.
    same_second = [sampler.decide(_event(i, ts=start), [])[0].decision for i in range(10)]
    assert same_second.count("pending") == 5 and same_second.count("over_budget") == 5
    # One event a second afterwards refills one token each: all pass.
    later = [
        sampler.decide(_event(100 + i, ts=start + timedelta(seconds=i + 1)), [])[0].decision
        for i in range(20)
    ]
    assert later.count("pending") == 20


def test_bucket_never_refills_backwards() -> None:
    bucket = TokenBucket(per_minute=60, capacity=1)
    assert bucket.take(100.0)
    assert not bucket.take(50.0)  # an older event does not mint tokens
    assert bucket.take(101.0)
