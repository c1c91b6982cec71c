"""Alert statistics on synthetic data with known answers (no store, no clock)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.alerts import stats as st
from monitor.alerts.model import Component, sequential_test, small_effect

RATE = [Component("bad", "rate", "", 1.0, 0.05)]
MEAN = [Component("judge", "mean", "", 1.0, 0.5, sd_floor=0.5)]


def test_llr_and_kl_known_values() -> None:
    assert st.bernoulli_llr(1, 1, 0.1, 0.2) == pytest.approx(math.log(2))
    assert st.bernoulli_llr(0, 1, 0.1, 0.2) == pytest.approx(math.log(0.8 / 0.9))
    assert st.kl_bernoulli(0.1, 0.1) == pytest.approx(0.0)
    assert st.kl_gaussian(0.0, 1.0, 1.0) == pytest.approx(0.5)
    # Gaussian LLR of one observation at mu1 equals the KL divergence.
    assert st.gaussian_llr(1.0, 1, 0.0, 1.0, 1.0) == pytest.approx(0.5)
    assert st.smoothed_rate(0, 100) > 0


def test_threshold_inverts_the_run_length_formula() -> None:
    for drift, alpha in [(10.0, 0.01), (500.0, 0.002), (0.5, 0.05)]:
        h = st.threshold(alpha, drift, floor=0.0)
        assert (math.expm1(h) - h) / drift == pytest.approx(1 / alpha, rel=1e-6)
    assert st.threshold(0.01, 100.0) < st.threshold(0.001, 100.0)
    assert st.threshold(0.5, 1e-9) == 3.0  # the floor
    with pytest.raises(ValueError):
        st.threshold(0.0, 1.0)


def test_cusum_restarts_and_reports_the_change_point() -> None:
    run = st.cusum([-1, -1, 2, 2, 2], h=5.0)
    assert run.stat == 6 and run.span_start == 2 and run.crossings == (4,)
    again = st.cusum([3, 3, 3, 3], h=5.0, restart_on_cross=True)
    assert again.crossings == (1, 3)


def test_auc_and_reliability() -> None:
    assert st.auc([3, 4], [1, 2]) == 1.0
    assert st.auc([1, 2], [3, 4]) == 0.0
    assert st.auc([1, 1], [1, 1]) == 0.5
    assert math.isnan(st.auc([], [1]))
    # A perfect judge measured on many pairs is trusted almost fully, on few pairs barely.
    assert st.reliability(1.0, 500, 500, prior=0.2) > 0.8
    assert st.reliability(1.0, 3, 3, prior=0.2) < 0.3
    assert st.reliability(0.3, 500, 500, prior=0.2) < 0.05
    assert st.reliability(math.nan, 0, 0, prior=0.2) == 0.2
    assert st.quantile([1, 2, 3, 4], 0.5) == 2.5


def _rate_day(
    rng: np.random.Generator, p_base: float, p_day: float, per_min: int = 10
) -> tuple[dict[str, float], list[dict[str, float]]]:
    base_n = 60 * per_min
    base = {"n": float(base_n), "x": float(rng.binomial(base_n, p_base))}
    xs = rng.binomial(per_min, p_day, size=1440)
    return base, [{"n": float(per_min), "x": float(x)} for x in xs]


def _alarm(
    base: dict[str, float], window: list[dict[str, float]], comps: list[Component], alpha: float
) -> int | None:
    # restart_from=0: every crossing over the day is listed, as the evaluator would see it.
    result = sequential_test(
        comps, base, 60.0, window, alpha=alpha, min_sample=1, min_base=1, restart_from=0
    )
    assert result is not None
    return result.crossings[0] if result.crossings else None


@pytest.mark.parametrize("p0", [0.02, 0.1, 0.3])
def test_rate_false_alarms_stay_near_alpha_with_an_estimated_baseline(p0: float) -> None:
    rng = np.random.default_rng(11)
    alpha, trials = 0.05, 300
    alarms = sum(_alarm(*_rate_day(rng, p0, p0), RATE, alpha) is not None for _ in range(trials))
    # At most alpha plus three Monte Carlo standard errors over a whole day of evaluations.
    assert alarms / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def test_rate_shift_is_detected_quickly() -> None:
    rng = np.random.default_rng(12)
    delays = []
    for _ in range(100):
        base, window = _rate_day(rng, 0.1, 0.1)
        shifted = _rate_day(rng, 0.1, 0.2)[1]
        window = window[:120] + shifted[:240]  # clean for two hours, then the rate doubles
        first = _alarm(base, window, RATE, 0.002)
        if first is not None and first >= 120:
            delays.append((first - 120 + 1) * 10)  # observations after onset
    assert len(delays) >= 95
    assert float(np.median(delays)) < 400


def _mean_day(
    rng: np.random.Generator, mu: float, shift_at: int, drop: float
) -> tuple[dict[str, float], list[dict[str, float]]]:
    base_v = np.clip(np.round(rng.normal(4.0, 0.8, size=300)), 1, 5)
    base = {"n": 300.0, "s": float(base_v.sum()), "ss": float((base_v**2).sum())}
    drops = np.where(np.arange(1440) >= shift_at, drop, 0.0)[:, None]
    v = np.clip(np.round(rng.normal(mu, 0.8, size=(1440, 3)) - drops), 1, 5)
    sums, squares = v.sum(axis=1), (v**2).sum(axis=1)
    cells = [{"n": 3.0, "s": float(a), "ss": float(b)} for a, b in zip(sums, squares, strict=True)]
    return base, cells


def test_mean_false_alarms_and_detection() -> None:
    rng = np.random.default_rng(13)
    alpha, trials = 0.05, 120
    clean = sum(
        _alarm(*_mean_day(rng, 4.0, 10**6, 0.0), MEAN, alpha) is not None for _ in range(trials)
    )
    assert clean / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    hits = [_alarm(*_mean_day(rng, 4.0, 600, 1.0), MEAN, 0.002) for _ in range(30)]
    assert all(h is not None and h >= 600 for h in hits)
    assert max(h - 600 for h in hits if h is not None) < 60  # within 180 judged answers


def test_a_weak_judge_weighed_down_causes_no_false_alarms() -> None:
    # Feedback is clean; the judge is noisy with a spurious small dip. Weighed by its
    # reliability (0.1), it must not fire the combined test on its own.
    rng = np.random.default_rng(14)
    comps = [
        Component("feedback", "rate", "f", 1.0, 0.05),
        Component("judge", "mean", "j", 0.1, 0.5, sd_floor=0.5),
    ]
    fired = 0
    for _ in range(60):
        fb_base, fb = _rate_day(rng, 0.1, 0.1, per_min=3)
        j_base, j = _mean_day(rng, 4.0, 0, 0.3)
        base = {
            "fn": fb_base["n"],
            "fx": fb_base["x"],
            "jn": j_base["n"],
            "js": j_base["s"],
            "jss": j_base["ss"],
        }
        window = [
            {"fn": a["n"], "fx": a["x"], "jn": b["n"], "js": b["s"], "jss": b["ss"]}
            for a, b in zip(fb, j, strict=True)
        ]
        fired += _alarm(base, window, comps, 0.002) is not None
    assert fired <= 2


def test_small_effect_is_the_resolve_bar() -> None:
    base = {"n": 1000.0, "x": 100.0}
    assert small_effect(RATE, base, [{"n": 100.0, "x": 11.0}])
    assert not small_effect(RATE, base, [{"n": 100.0, "x": 20.0}])
    assert small_effect(RATE, base, [])  # no traffic: the canary is gone
