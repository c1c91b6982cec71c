"""The alert state machine: pending -> firing -> resolved, with hysteresis and cooldown.

Pure: `step` takes the previous state of one (rule, segment) and this evaluation's
verdict and returns the new state and, when the state changed, the transition to store.
Notifications go out on transitions to ``firing`` and to ``resolved`` only, so a segment
that stays bad for hours pages once.

- inactive/resolved --breach--> pending (or straight to firing when ``for_evals`` is 1)
- pending --breach ``for_evals`` times in a row--> firing  (notify)
- pending --no breach--> inactive  (a transient crossing; nobody is paged)
- firing --quiet for ``resolve_minutes`` and the effect under half the minimum--> resolved
  (notify); hysteresis: the firing condition (a CUSUM crossing) and the resolving one
  (a long quiet spell and a small effect) are far apart, so an alert cannot flap
- after resolving, a new breach within ``cooldown_minutes`` stays pending until the
  cooldown is over, then fires as a new alert; a breach after resolving is tested on
  events since the resolve only (`monitor.alerts.evaluation`), so one incident pages once
  and a segment without new traffic cannot fire again
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

StateName = Literal["inactive", "pending", "firing", "resolved"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one (rule, segment) stands. Rebuilt from its latest stored transition."""

    state: StateName = "inactive"
    since: datetime | None = None
    """When the current state began (event time)."""
    breaches: int = 0
    """Consecutive breached evaluations while pending."""
    fired_at: datetime | None = None
    """When the current (or last) alert fired."""
    resolved_at: datetime | None = None
    """When the last alert resolved (for the cooldown)."""
    onset: datetime | None = None
    """Estimated start of the change (start of the CUSUM excursion)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one evaluation concluded for one segment."""

    breached: bool
    """The test crossed its threshold with enough data."""
    last_breach: datetime | None = None
    """While firing: the latest event time at which the test (restarted at firing) crossed."""
    small_effect: bool = False
    """The recent effect is under half the minimum effect (needed to resolve)."""
    onset: datetime | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    for_evals: int
    resolve: timedelta
    cooldown: timedelta


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change to store in table ``alerts``; ``notify`` says whether to page."""

    old: StateName
    new: StateName
    state: AlertState
    notify: bool
    reason: str


def step(prev: AlertState, verdict: Verdict, as_of: datetime, timing: Timing) -> Transition | None:
    """The next state of one (rule, segment) at event time ``as_of``; None when unchanged."""
    if prev.state == "firing":
        last = max(filter(None, (verdict.last_breach, prev.fired_at)), default=as_of)
        # `breached` is ignored here: the plain CUSUM stays high long after an incident ends;
        # the CUSUM restarted at firing (its crossings give `last_breach`) is what counts.
        if verdict.small_effect and as_of - last >= timing.resolve:
            state = replace(prev, state="resolved", since=as_of, resolved_at=as_of, breaches=0)
            return Transition("firing", "resolved", state, True, "quiet")
        return None
    if not verdict.breached:
        if prev.state == "pending":
            return Transition(
                "pending",
                "inactive",
                replace(prev, state="inactive", since=as_of, breaches=0),
                False,
                "cleared",
            )
        return None
    breaches = prev.breaches + 1 if prev.state == "pending" else 1
    onset = prev.onset if prev.state == "pending" and prev.onset else verdict.onset
    cooling = prev.resolved_at is not None and as_of - prev.resolved_at < timing.cooldown
    if breaches >= timing.for_evals and not cooling:
        state = AlertState("firing", as_of, 0, as_of, prev.resolved_at, onset or as_of)
        return Transition(prev.state, "firing", state, True, "breach")
    if prev.state == "pending":
        # Still pending: count the breach in memory; only state changes are stored.
        return Transition("pending", "pending", replace(prev, breaches=breaches), False, "count")
    state = AlertState("pending", as_of, breaches, prev.fired_at, prev.resolved_at, onset)
    return Transition(prev.state, "pending", state, False, "cooldown" if cooling else "breach")


def alert_id(rule: str, segment_key: str, fired_at: datetime | None) -> str:
    """Stable id of one alert episode: the same rule, segment and firing time, the same id."""
    stamp = fired_at.isoformat() if fired_at else "-"
    return hashlib.sha1(f"{rule}|{segment_key}|{stamp}".encode()).hexdigest()[:16]
