"""Deterministic sampling: which events each expensive scorer sees, and why.

Every (event, scorer) pair gets exactly one `Decision`, stored in table ``decisions``:

- ``pending``      selected; waiting in the scorer's queue (replaced when it finishes)
- ``scored``       the scorer produced a result
- ``sampled_out``  not selected by the sampling rate
- ``over_budget``  selected, but the scorer's budget or queue was exhausted
- ``failed``       the scorer tried and failed (the reason says how)

Selection hashes the event_id, so the same event gets the same answer in a replay, on
another worker, or after a restart. The hash is shared by all scorers (coordinated
sampling): samples are nested, so with judge at 5% and embeddings at 25% every judged
event also has an embedding, and the drift job can report judge scores per topic cluster.
Priority rules (negative feedback, a failed heuristic) bypass the rate. Budgets are
token buckets refilled in *event* time, so a replay of history spends them exactly as the
live worker did.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from monitor.config import SamplingSettings
from monitor.events import Event

DecisionKind = Literal["pending", "scored", "sampled_out", "over_budget", "failed"]

#: ReplacingMergeTree version: a higher rank replaces a lower one for the same key.
RANK: dict[str, int] = {"pending": 0, "sampled_out": 1, "over_budget": 1, "failed": 2, "scored": 3}

_SCALE = float(1 << 64)


@dataclass(slots=True, frozen=True)
class Decision:
    """What happens to one event for one scorer, and why."""

    scorer: str
    decision: DecisionKind
    reason: str


def sample_point(event_id: str) -> float:
    """A uniform number in [0, 1) fixed by the event_id."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class TokenBucket:
    """A token bucket refilled by event time; out-of-order events never refill backwards."""

    __slots__ = ("capacity", "last", "per_second", "tokens")

    def __init__(self, per_minute: float, capacity: float) -> None:
        self.per_second = per_minute / 60.0
        self.capacity = capacity
        self.tokens = capacity
        self.last: float | None = None

    def take(self, at: float) -> bool:
        if self.last is None:
            self.last = at
        elif at > self.last:
            self.tokens = min(self.capacity, self.tokens + (at - self.last) * self.per_second)
            self.last = at
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Sampler:
    """Decides, per event and scorer, whether the scorer runs."""

    def __init__(self, settings: SamplingSettings, scorers: list[str]) -> None:
        self.settings = settings
        self.scorers = list(scorers)
        self._buckets = {
            name: TokenBucket(per_minute, settings.budget_burst.get(name, per_minute))
            for name, per_minute in settings.budget_per_minute.items()
            if name in self.scorers
        }
        self._rate_cache: dict[tuple[str, str, str], float] = {}

    def rate(self, scorer: str, route: str, model: str) -> float:
        """The effective rate: route+model override > route or model override > base."""
        key = (scorer, route, model)
        cached = self._rate_cache.get(key)
        if cached is not None:
            return cached
        best: tuple[int, float] | None = None
        for rule in self.settings.overrides:
            if rule.scorer != scorer:
                continue
            if rule.route is not None and rule.route != route:
                continue
            if rule.model is not None and rule.model != model:
                continue
            specificity = (rule.route is not None) + (rule.model is not None)
            if best is None or specificity > best[0]:
                best = (specificity, rule.rate)
        rate = best[1] if best is not None else self.settings.rates.get(scorer, 0.0)
        self._rate_cache[key] = rate
        return rate

    def priority_reason(self, event: Event, failed_checks: list[str]) -> str | None:
        """Why an event must be scored regardless of rate, or None."""
        if (
            self.settings.priority_negative_feedback
            and event.feedback is not None
            and event.feedback.rating < 0
        ):
            return "priority:negative_feedback"
        if self.settings.priority_failed_heuristic and failed_checks:
            return "priority:failed_check"
        return None

    def decide(
        self, event: Event, failed_checks: list[str], flags: tuple[str, ...] = ()
    ) -> list[Decision]:
        """One decision per scorer for ``event``.

        ``flags`` are extra priority reasons found before sampling (e.g. a jailbreak
        pattern in the prompt); they count like a failed check.
        """
        if not self.scorers:
            return []  # heuristics-only deployments: nothing to decide, per event
        if not event.content_captured:
            # Every scorer reads text; a placeholder answer would only be scored as "".
            return [Decision(scorer, "sampled_out", "no_content") for scorer in self.scorers]
        priority = self.priority_reason(event, failed_checks) or (
            f"priority:{flags[0]}" if flags else None
        )
        at = _epoch(event.ts)
        point = -1.0  # computed once, only when a rate needs it
        out = []
        for scorer in self.scorers:
            if priority is not None:
                selected, reason = True, priority
            else:
                rate = self.rate(scorer, event.route, event.model)
                if 0.0 < rate < 1.0 and point < 0.0:
                    point = sample_point(event.event_id)
                selected = rate >= 1.0 or (rate > 0.0 and point < rate)
                reason = f"rate:{rate:g}"
            if not selected:
                out.append(Decision(scorer, "sampled_out", reason))
                continue
            bucket = self._buckets.get(scorer)
            if bucket is not None and not bucket.take(at):
                out.append(Decision(scorer, "over_budget", "budget"))
            else:
                out.append(Decision(scorer, "pending", reason))
        return out


def _epoch(ts: datetime) -> float:
    return ts.timestamp()
