"""One sequential test per (rule, segment), from per-minute sums: pure, no store.

A rule's metric is one or more *components*, each a rate (``x`` bad out of ``n``) or a
mean (``s`` and ``ss`` over ``n``), with a weight. The helpfulness rule, for instance, is
negative feedback (weight 1) + the judge's mean (weight = its measured reliability) +
cheap quality checks (a fixed weight). Their LLR increments add up into one CUSUM: under
the baseline each weighted LLR has E[exp(w * llr)] <= 1 (Jensen, w <= 1), so a weak judge
tempered by a small weight cannot cause false alarms by itself, while its evidence still
counts when it agrees with feedback.

Trust order: weaker evidence may speed up a detection or stand in for missing stronger
evidence, but never overrule it. A chart of a combined test counts as breached only
when its most trusted component with observations in the evidence span (the highest
weight among those that count towards the minimum sample: feedback, then the judge)
supports the alarm on its own, i.e. its own LLR summed over the span is positive (its
observations favour the chart's alternative over the baseline). So if negative feedback
is unchanged or fell while refusals surged, the helpfulness rule does not fire on the
refusals. Under the baseline this only removes alarms (the false-alarm bound holds);
under a real drop the trusted LLR drifts upwards, so the veto only delays a detection
while that component's own evidence is still against it. See `_veto`.

Cells are dicts of named sums for one segment and one minute, e.g. ``{"n": 12, "x": 3}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from monitor.alerts import stats as st
from monitor.alerts.state import Verdict

Cell = Mapping[str, float]

#: Baselines are measured with error; testing against "estimate + one standard error"
#: keeps a short baseline from inflating false alarms (see tests/test_alerts_stats.py).
BASELINE_Z = 1.0


@dataclass(frozen=True, slots=True)
class Component:
    """One signal of a metric. ``prefix`` names its sums: ``{prefix}n``, ``{prefix}x``..."""

    label: str
    kind: Literal["rate", "mean"]
    prefix: str = ""
    weight: float = 1.0
    min_effect: float = 0.05
    min_ratio: float = 1.0
    sd_floor: float = 0.0
    """For means: the smallest spread assumed (integer judge scores can look constant)."""
    counts: bool = True
    """Whether its observations count towards the rule's minimum sample (cheap checks run
    on every event, so they would meet any minimum without saying much)."""


@dataclass(frozen=True, slots=True)
class Part:
    """What one component saw: baseline and span values, and its share of the evidence."""

    label: str
    kind: str
    weight: float
    baseline: float
    value: float
    n: float
    evidence: float


@dataclass(frozen=True, slots=True)
class TestResult:
    """The outcome of one evaluation of one segment."""

    stat: float
    h: float
    drift_per_day: float
    breached: bool
    span_start: int
    """Index of the first bucket of the current excursion (the estimated onset)."""
    n_span: float
    parts: tuple[Part, ...]
    crossings: tuple[int, ...] = ()
    """Bucket indices where a CUSUM restarted at ``restart_from`` crossed ``h``."""
    confidence: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def effect(self) -> float:
        """Effect of the main (first) component over the span: rate up, or mean down."""
        main = self.parts[0] if self.parts else None
        if main is None or math.isnan(main.value):
            return math.nan
        return main.value - main.baseline if main.kind == "rate" else main.baseline - main.value


def columns(
    window: Sequence[Cell], comp: Component
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The per-bucket counts ``n`` and bad counts (or sums) of one component, as arrays."""
    key = comp.prefix + ("x" if comp.kind == "rate" else "s")
    n = np.fromiter((c.get(comp.prefix + "n", 0.0) for c in window), float, len(window))
    x = np.fromiter((c.get(key, 0.0) for c in window), float, len(window))
    return n, x


def total(cells: Sequence[Cell]) -> dict[str, float]:
    out: dict[str, float] = {}
    for cell in cells:
        for key, value in cell.items():
            out[key] = out.get(key, 0.0) + float(value)
    return out


@dataclass(frozen=True, slots=True)
class _Fitted:
    comp: Component
    p_hat: float
    p0: float
    p1: float
    sd: float
    obs_per_day: float

    def coef(self) -> tuple[float, float]:
        """(a, b) with LLR = a * x + b * n for a bucket (x bad, or s sum, out of n)."""
        if self.comp.kind == "rate":
            b = st.bernoulli_llr(0.0, 1.0, self.p0, self.p1)
            return st.bernoulli_llr(1.0, 1.0, self.p0, self.p1) - b, b
        return st.gaussian_llr(1.0, 0.0, self.p0, self.p1, self.sd), st.gaussian_llr(
            0.0, 1.0, self.p0, self.p1, self.sd
        )

    def kl(self) -> float:
        if self.comp.kind == "rate":
            return st.kl_bernoulli(self.p0, self.p1)
        return st.kl_gaussian(self.p0, self.p1, self.sd)

    def value(self, sums: Mapping[str, float]) -> float:
        n = sums.get(self.comp.prefix + "n", 0.0)
        if n <= 0:
            return math.nan
        key = "x" if self.comp.kind == "rate" else "s"
        return sums.get(self.comp.prefix + key, 0.0) / n


#: A bank of CUSUMs tuned to 1, 2, 4 and 8 times the minimum effect. One chart tuned to
#: the minimum effect is slow on a large shift (each bad observation carries little LLR);
#: the bank catches large shifts about twice as fast for ln(4) more threshold (Bonferroni).
SCALES = (1.0, 2.0, 4.0, 8.0)


def _subsets(components: Sequence[Component]) -> list[list[Component]]:
    """The component sets the bank charts: all of them, and, when some do not count
    towards the minimum sample (the cheap checks), the counting ones alone.

    A chart of all components tuned to ``k`` times every minimum effect assumes they all
    moved: when feedback jumps but the cheap checks did not change (a weaker model that
    answers, badly), each unchanged cheap observation subtracts LLR, and on a large shift
    that slowed a canary's detection by half. The counting-only chart sees feedback (and
    the judge) as they are; the bank pays one more ``ln 2`` of threshold for it.
    """
    counting = [c for c in components if c.counts]
    if counting and len(counting) < len(components):
        return [list(components), counting]
    return [list(components)]


def _fit(
    comp: Component, base: Mapping[str, float], base_minutes: float, scale: float = 1.0
) -> _Fitted | None:
    n = base.get(comp.prefix + "n", 0.0)
    if n <= 0 or comp.weight <= 0:
        return None
    obs_per_day = n / max(base_minutes, 1e-9) * 1440.0
    if comp.kind == "rate":
        p_hat = st.smoothed_rate(base.get(comp.prefix + "x", 0.0), n)
        p0 = st.clamp_rate(p_hat + BASELINE_Z * math.sqrt(p_hat * (1 - p_hat) / (n + 1)))
        ratio = 1.0 + (comp.min_ratio - 1.0) * scale
        p1 = min(st.design_rate(p0, comp.min_effect * scale, ratio), max(0.95, p0 + 1e-3))
        return _Fitted(comp, p_hat, p0, p1, 0.0, obs_per_day)
    mean, sd = st.mean_sd(
        base.get(comp.prefix + "s", 0.0), base.get(comp.prefix + "ss", 0.0), n, floor=comp.sd_floor
    )
    mu0 = mean - BASELINE_Z * sd / math.sqrt(n)
    return _Fitted(comp, mean, mu0, mu0 - comp.min_effect * scale, sd, obs_per_day)


@dataclass(frozen=True, slots=True)
class _Chart:
    fitted: list[_Fitted]
    per_comp: list[NDArray[np.float64]]
    increments: list[float]
    window: Sequence[Cell]
    drift: float
    h: float
    run: st.Cusum


def _chart(
    components: Sequence[Component],
    base: Mapping[str, float],
    base_minutes: float,
    window: Sequence[Cell],
    min_base: float,
    alpha: float,
    scale: float,
) -> _Chart | None:
    fitted = [
        f
        for comp in components
        if base.get(comp.prefix + "n", 0.0) >= min_base
        and (f := _fit(comp, base, base_minutes, scale)) is not None
    ]
    if not fitted:
        return None
    per_comp = []
    for f in fitted:
        n, x = columns(window, f.comp)
        a, b = f.coef()
        per_comp.append(f.comp.weight * (a * x + b * n))
    increments = [float(v) for v in np.sum(per_comp, axis=0)]
    drift = sum(f.comp.weight * f.obs_per_day * f.kl() for f in fitted)
    h = st.threshold(alpha, drift)
    return _Chart(fitted, per_comp, increments, window, drift, h, st.cusum(increments, h))


def _veto(chart: _Chart) -> str | None:
    """Why ``chart``'s most trusted component contradicts its alarm (None when it does not).

    The trusted component is the highest-weight one that counts towards the minimum
    sample and has observations in the evidence span; it must not have a non-positive
    LLR there. A rule of one component is never vetoed (its LLR is the statistic).
    """
    run = chart.run
    if len(chart.fitted) < 2 or run.stat <= 0:
        return None
    span = total(chart.window[run.span_start :])
    trusted = [
        (f.comp.weight, -i, i)
        for i, f in enumerate(chart.fitted)
        if f.comp.counts and span.get(f.comp.prefix + "n", 0.0) > 0
    ]
    if not trusted:
        return None
    i = max(trusted)[2]
    if float(chart.per_comp[i][run.span_start :].sum()) > 0:
        return None
    f = chart.fitted[i]
    now = f.value(span)
    shown = (
        f"{100 * now:.1f}% vs {100 * f.p_hat:.1f}%"
        if f.comp.kind == "rate"
        else f"{now:.2f} vs {f.p_hat:.2f}"
    )
    return f"not raised: {f.comp.label} {shown} points the other way"


def sequential_test(
    components: Sequence[Component],
    base: Mapping[str, float],
    base_minutes: float,
    window: Sequence[Cell],
    *,
    alpha: float,
    min_sample: float,
    min_base: float,
    restart_from: int | None = None,
    scales: Sequence[float] = SCALES,
) -> TestResult | None:
    """A bank of CUSUMs of the weighted LLRs of every usable component over ``window``.

    A component is usable when its baseline has at least ``min_base`` observations; None
    when none is. The bank charts each of `_subsets` at each of ``scales``, and each chart
    gets an equal share of ``alpha``; the reported chart
    is the one closest to (or furthest past) its threshold among those its most trusted
    component backs (`_veto`; a contradicted chart never breaches, and says why in
    ``notes``). ``restart_from`` (a bucket
    index) also runs CUSUMs that restart after each crossing from there on, to tell
    whether a firing alert keeps being confirmed.
    """
    sets = _subsets(components)
    share = alpha / (len(scales) * len(sets))
    charts = [
        c
        for comps in sets
        for k in scales
        if (c := _chart(comps, base, base_minutes, window, min_base, share, k))
    ]
    if not charts:
        return None
    vetoes = [_veto(c) for c in charts]
    backed = [c for c, v in zip(charts, vetoes, strict=True) if v is None]
    best = max(backed or charts, key=lambda c: c.run.stat / c.h)
    is_backed = any(best is c for c in backed)  # identity: charts hold arrays
    # Say so when a contradicted chart would have fired and no backed one does.
    vetoed = [v for c, v in zip(charts, vetoes, strict=True) if v and c.run.stat >= c.h]
    notes = tuple(vetoed[:1]) if vetoed and not (is_backed and best.run.stat >= best.h) else ()
    run, fitted = best.run, best.fitted
    span = window[run.span_start :] if run.stat > 0 else []
    span_sums = total(span)
    n_span = sum(span_sums.get(f.comp.prefix + "n", 0.0) for f in fitted if f.comp.counts)
    evid = [
        max(0.0, float(inc[run.span_start :].sum())) if span else 0.0
        for f, inc in zip(fitted, best.per_comp, strict=True)
    ]
    evid_total = sum(evid) or 1.0
    parts = tuple(
        Part(
            f.comp.label,
            f.comp.kind,
            f.comp.weight,
            f.p_hat,
            f.value(span_sums),
            span_sums.get(f.comp.prefix + "n", 0.0),
            e / evid_total,
        )
        for f, e in zip(fitted, evid, strict=True)
    )
    crossings: set[int] = set()
    if restart_from is not None and restart_from < len(window):
        start = max(restart_from, 0)
        for chart in backed:
            again = st.cusum(chart.increments[start:], chart.h, restart_on_cross=True)
            crossings.update(i + start for i in again.crossings)
    # How often clean data would push some chart of the bank this far (Bonferroni).
    alarm_chance = min(1.0, len(charts) * st.false_alarm_bound(run.stat, best.drift))
    return TestResult(
        stat=run.stat,
        h=best.h,
        drift_per_day=best.drift,
        breached=run.stat >= best.h and n_span >= min_sample and is_backed,
        span_start=run.span_start,
        n_span=n_span,
        parts=parts,
        crossings=tuple(sorted(crossings)),
        confidence=1.0 - alarm_chance,
        notes=notes,
    )


def small_effect(
    components: Sequence[Component], base: Mapping[str, float], recent: Sequence[Cell]
) -> bool:
    """Whether every component's recent effect is under half its minimum (the resolve bar).

    No recent observations counts as small: a canary that was rolled back stops sending
    traffic, and its alert should resolve.
    """
    sums = total(recent)
    for comp in components:
        n_base = base.get(comp.prefix + "n", 0.0)
        n_recent = sums.get(comp.prefix + "n", 0.0)
        if n_base <= 0 or n_recent <= 0 or comp.weight <= 0:
            continue
        key = "x" if comp.kind == "rate" else "s"
        then = base.get(comp.prefix + key, 0.0) / n_base
        now = sums.get(comp.prefix + key, 0.0) / n_recent
        effect = now - then if comp.kind == "rate" else then - now
        floor = (
            comp.min_effect
            if comp.kind == "mean"
            else max(comp.min_effect, then * (comp.min_ratio - 1))
        )
        if effect >= floor / 2:
            return False
    return True


@dataclass
class Outcome:
    """One segment's evaluation, ready to become an alert row."""

    verdict: Verdict
    value: float
    baseline: float
    effect: float
    statistic: float
    threshold: float
    n: float
    confidence: float
    message: str
    query: str
    details: dict[str, Any]


#: One rule's evaluation: segment key -> (segment, its outcome).
Outcomes = dict[str, tuple[dict[str, str], Outcome]]
