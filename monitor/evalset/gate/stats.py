"""Point estimates with intervals: Wilson for proportions, a seeded bootstrap otherwise.

Every interval is reproducible: the bootstrap's generator is seeded, so the same answers
give the same report. Deltas (candidate - baseline) are bootstrapped over items in pairs,
since both models answered the same items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

Statistic = Callable[[np.ndarray], float]
_SEED = 20_261_122


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its interval and the number of observations behind it."""

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (0..1 for n = 0)."""
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(flags: Sequence[bool], confidence: float = 0.95) -> Estimate:
    """The share of true ``flags``, with its Wilson interval."""
    k, n = sum(flags), len(flags)
    low, high = wilson(k, n, confidence)
    return Estimate(k / n if n else 0.0, low, high, n)


def mean(values: np.ndarray) -> float:
    return float(values.mean())


def percentile(q: float) -> Statistic:
    def statistic(values: np.ndarray) -> float:
        return float(np.percentile(values, q))

    return statistic


def bootstrap(values: Sequence[float], statistic: Statistic = mean, confidence: float = 0.95,
              samples: int = 2000) -> Estimate:
    """``statistic`` of ``values`` with a percentile-bootstrap interval."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    value = statistic(data)
    if data.size == 1:
        return Estimate(value, value, value, 1)
    rng = np.random.default_rng(_SEED)
    picks = rng.integers(0, data.size, size=(samples, data.size))
    resampled = np.array([statistic(data[row]) for row in picks])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(resampled, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), int(data.size))


def paired_delta(candidate: Sequence[float], baseline: Sequence[float], confidence: float = 0.95,
                 samples: int = 2000, statistic: Statistic = mean) -> Estimate:
    """``statistic(candidate) - statistic(baseline)`` with a bootstrap interval that
    resamples items, keeping each item's two values together."""
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.size == 0 or a.size != b.size:
        return Estimate(math.nan, math.nan, math.nan, 0)
    value = statistic(a) - statistic(b)
    if a.size == 1:
        return Estimate(value, value, value, 1)
    rng = np.random.default_rng(_SEED)
    picks = rng.integers(0, a.size, size=(samples, a.size))
    resampled = np.array([statistic(a[row]) - statistic(b[row]) for row in picks])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(resampled, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), int(a.size))
