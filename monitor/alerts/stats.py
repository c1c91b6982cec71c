"""The statistics behind alert rules: pure functions over numbers, no store, no clock.

Streaming detection uses Page's CUSUM on log-likelihood ratios (LLRs). Each rule names a
baseline value (a rate or a mean) and a minimum effect; the CUSUM accumulates the LLR of
"baseline + minimum effect" against "baseline" and alarms when it crosses ``h``.

Why CUSUM and not a test per window: a test repeated every minute at p < 0.05 fires on
clean data as often as the maths says. The CUSUM's false-alarm behaviour is known over the
whole stream: its average run length to a false alarm is about ``(e^h - h - 1) / D`` where
``D`` is the expected per-observation drift (the KL divergence) under the baseline
(Siegmund's approximation). We invert that to get ``h`` from a false-alarm probability
per day, so the bound holds however often the evaluator runs.

Observations arrive in per-minute buckets; the recursion clips at zero between buckets
(restarts are allowed only at bucket boundaries), which only lowers the false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Rates are kept away from 0 and 1 so LLRs stay finite.
_EPS = 1e-6


def clamp_rate(p: float) -> float:
    return min(1.0 - _EPS, max(_EPS, p))


def smoothed_rate(x: float, n: float) -> float:
    """A baseline rate that is never exactly 0 or 1: Jeffreys prior, (x + 1/2) / (n + 1).

    A clean baseline with no toxic answer at all must not make one toxic answer infinitely
    surprising.
    """
    return clamp_rate((x + 0.5) / (n + 1.0))


def design_rate(p0: float, min_effect: float, min_ratio: float = 1.0) -> float:
    """The alternative a rate CUSUM is tuned for: ``p0 + min_effect`` or ``p0 * min_ratio``,
    whichever is larger."""
    return clamp_rate(max(p0 + min_effect, p0 * min_ratio))


def bernoulli_llr(x: float, n: float, p0: float, p1: float) -> float:
    """LLR of ``x`` successes in ``n`` trials under rate ``p1`` against ``p0``."""
    p0, p1 = clamp_rate(p0), clamp_rate(p1)
    return x * math.log(p1 / p0) + (n - x) * math.log((1.0 - p1) / (1.0 - p0))


def kl_bernoulli(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)) in nats."""
    p, q = clamp_rate(p), clamp_rate(q)
    return p * math.log(p / q) + (1.0 - p) * math.log((1.0 - p) / (1.0 - q))


def gaussian_llr(total: float, n: float, mu0: float, mu1: float, sigma: float) -> float:
    """LLR of ``n`` observations summing to ``total`` under mean ``mu1`` against ``mu0``."""
    var = max(sigma, 1e-9) ** 2
    return ((mu1 - mu0) * total - n * (mu1 * mu1 - mu0 * mu0) / 2.0) / var


def kl_gaussian(mu0: float, mu1: float, sigma: float) -> float:
    """KL between two normals of equal spread: (mu1 - mu0)^2 / (2 sigma^2)."""
    return (mu1 - mu0) ** 2 / (2.0 * max(sigma, 1e-9) ** 2)


@dataclass(frozen=True, slots=True)
class Cusum:
    """Where a CUSUM run ended.

    ``stat`` is the statistic after the last bucket; ``span_start`` the index of the first
    bucket of the current excursion (the estimated change point); ``crossings`` the bucket
    indices where it crossed ``h`` (it restarts at zero after each one when asked to).
    """

    stat: float
    span_start: int
    peak: float
    crossings: tuple[int, ...]


def _page(increments: NDArray[np.float64]) -> NDArray[np.float64]:
    # Page's recursion in closed form: S_t = C_t - min(0, min_{k<=t} C_k), C the cumsum.
    c = np.cumsum(increments)
    return c - np.minimum(np.minimum.accumulate(c), 0.0)


def cusum(
    increments: Sequence[float] | NDArray[np.float64],
    h: float = math.inf,
    *,
    restart_on_cross: bool = False,
) -> Cusum:
    """Page's recursion ``S = max(0, S + llr)`` over per-bucket LLR sums (vectorised)."""
    inc = np.asarray(increments, dtype=float)
    if inc.size == 0:
        return Cusum(0.0, 0, 0.0, ())
    stats = _page(inc)
    crossings: list[int] = []
    if restart_on_cross:
        offset, part = 0, stats
        while True:
            over = np.flatnonzero(part >= h)
            if over.size == 0:
                break
            crossings.append(offset + int(over[0]))
            offset += int(over[0]) + 1
            if offset >= inc.size:
                part = np.zeros(0)
                break
            part = _page(inc[offset:])
        final = float(part[-1]) if part.size else 0.0
        stats = np.concatenate([stats[:offset], part]) if part.size else stats[:offset]
    else:
        crossings = [int(i) for i in np.flatnonzero(stats >= h)]
        final = float(stats[-1])
    zeros = np.flatnonzero(stats[:-1] <= 0.0)
    span_start = int(zeros[-1]) + 1 if zeros.size else 0
    if restart_on_cross and crossings and span_start <= crossings[-1]:
        span_start = crossings[-1] + 1
    return Cusum(final, span_start, float(stats.max()), tuple(crossings))


def _excess(h: float) -> float:
    # e^h - h - 1 without cancellation for small h, and without overflow for huge ones.
    return math.inf if h > 700.0 else math.expm1(h) - h


def threshold(alpha_per_day: float, drift_per_day: float, *, floor: float = 3.0) -> float:
    """The CUSUM threshold ``h`` with about ``alpha_per_day`` false alarms a day.

    ``drift_per_day`` is the KL divergence under the baseline accumulated over a day of
    observations (observations per day times the per-observation KL of the design
    alternative). Solves ``(e^h - h - 1) / drift_per_day = 1 / alpha_per_day``. The
    ``floor`` keeps a trickle of data (tiny drift) from giving a hair trigger.
    """
    if not 0.0 < alpha_per_day < 1.0:
        raise ValueError("alpha_per_day must be in (0, 1)")
    target = max(drift_per_day, 1e-12) / alpha_per_day
    h = math.log1p(target)
    for _ in range(60):  # fixed point of h = log(1 + target + h); converges in a few steps
        h_next = math.log1p(target + h)
        if abs(h_next - h) < 1e-9:
            break
        h = h_next
    return max(h, floor)


def false_alarm_bound(stat: float, drift_per_day: float) -> float:
    """About how often per day a clean stream reaches ``stat`` (capped at 1)."""
    if stat <= 0.0:
        return 1.0
    return min(1.0, max(drift_per_day, 1e-12) / max(_excess(stat), 1e-12))


def confidence(stat: float, drift_per_day: float) -> float:
    """How sure an alarm is: 1 minus the daily chance that clean data reaches ``stat``."""
    return 1.0 - false_alarm_bound(stat, drift_per_day)


# -- summaries -----------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mean_sd(total: float, total_sq: float, n: float, *, floor: float = 0.0) -> tuple[float, float]:
    """Mean and standard deviation from sums (sample variance), the sd at least ``floor``."""
    if n <= 0:
        return math.nan, math.nan
    mean = total / n
    var = (total_sq - n * mean * mean) / (n - 1) if n > 1 else 0.0
    return mean, max(math.sqrt(max(var, 0.0)), floor)


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score of a positive > score of a negative), ties half (Mann-Whitney); NaN if empty."""
    if not positives or not negatives:
        return math.nan
    pooled = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:
            j += 1
        mid_rank = (i + j + 1) / 2.0  # average 1-based rank of the tie group
        rank_sum += mid_rank * sum(1 for k in range(i, j) if pooled[k][1] == 1)
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def reliability(
    measured_auc: float, n_pos: int, n_neg: int, prior: float, *, prior_pairs: float = 50.0
) -> float:
    """How much to trust a judge, 0..1, from its AUC at telling bad answers from good ones.

    ``2 * AUC - 1`` (0 for a coin, 1 for a perfect judge), shrunk towards ``prior`` when
    few labelled pairs back the measurement: a judge is never trusted on ten examples.
    """
    if math.isnan(measured_auc) or n_pos == 0 or n_neg == 0:
        return prior
    measured = max(0.0, 2.0 * measured_auc - 1.0)
    pairs = 1.0 / (1.0 / n_pos + 1.0 / n_neg)  # effective sample size of the AUC
    weight = pairs / (pairs + prior_pairs)
    return min(1.0, max(0.0, weight * measured + (1.0 - weight) * prior))


def agreement_reliability(
    kappa: float, n: int, prior: float, *, prior_items: float = 30.0
) -> float:
    """How much to trust a judge, 0..1, from its Cohen's kappa against human labels on
    ``n`` items: the kappa (a chance-corrected agreement, so 0 for a coin), shrunk
    towards ``prior`` until about ``prior_items`` items back it (at 30 items, halfway)."""
    if math.isnan(kappa) or n <= 0:
        return prior
    weight = n / (n + prior_items)
    return min(1.0, max(0.0, weight * max(0.0, kappa) + (1.0 - weight) * prior))

