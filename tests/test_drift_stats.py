"""The drift statistics on synthetic data with known answers (no store)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats as sps

from monitor.drift.comparison import (
    StatParams,
    alpha_per_test,
    build_reference,
    centroid_cosine_distance,
    compare,
)
from monitor.drift.mmd import (
    mmd2_exact,
    mmd_permutation_test,
    naive_mmd_permutation_test,
    rff_frequencies,
    rff_map,
)
from monitor.drift.seeds import seed_from
from monitor.drift.topics import kmeans, new_topic_test, share_shift
from monitor.drift.vectors import blas_threads, normalize_rows

DIM = 32


def topics(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return normalize_rows(rng.standard_normal((k, DIM)))


def sample(
    centres: np.ndarray, shares: Sequence[float], n: int, rng: np.random.Generator
) -> np.ndarray:
    """n unit vectors around the given topic centres, drawn with the given shares."""
    labels = rng.choice(len(centres), size=n, p=np.asarray(shares) / sum(shares))
    return normalize_rows(centres[labels] + 0.25 * rng.standard_normal((n, DIM)))


def test_alpha_is_spent_over_a_day_and_three_tests() -> None:
    assert alpha_per_test(0.01, 5.0) == pytest.approx(0.01 / 288 / 3)
    assert alpha_per_test(0.01, 1440.0 * 2) == pytest.approx(0.01 / 3)  # at least one a day


def test_seed_is_stable_and_input_sensitive() -> None:
    assert seed_from("a", 1, "2026-11-22T08:00:00") == seed_from("a", 1, "2026-11-22T08:00:00")
    assert seed_from("a", 1) != seed_from("a", 2)


def test_mmd_false_positive_rate_stays_near_alpha_without_shift() -> None:
    centres = topics(5)
    rng = np.random.default_rng(1)
    p_gamma, p_perm = [], []
    with blas_threads(1):
        for _ in range(200):
            x, y = sample(centres, [1] * 5, 300, rng), sample(centres, [1] * 5, 120, rng)
            omega = rff_frequencies(DIM, 256, 1.0, rng)
            result = mmd_permutation_test(rff_map(x, omega), rff_map(y, omega), 100, rng)
            p_gamma.append(result.p_value)
            p_perm.append(result.p_perm)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)  # alpha plus three binomial SDs
    assert np.mean(np.array(p_gamma) < 0.05) <= bound
    assert np.mean(np.array(p_perm) < 0.05) <= bound
    # Under the null p-values are roughly uniform: neither piled at 0 nor at 1.
    assert 0.35 < float(np.mean(p_gamma)) < 0.65


def test_mmd_detects_a_shift_of_known_size() -> None:
    centres = topics(5)
    rng = np.random.default_rng(2)
    x = sample(centres, [1] * 5, 1000, rng)
    y = sample(centres, [1, 1, 1, 1, 4], 300, rng)  # topic 4: 20% -> 50% of traffic
    omega = rff_frequencies(DIM, 512, 1.0, rng)
    result = mmd_permutation_test(rff_map(x, omega), rff_map(y, omega), 200, rng)
    assert result.exceeds_all and result.p_value < 1e-6
    assert result.p_perm == pytest.approx(1 / 201)
    assert result.effect > 0.05


def test_rff_mmd_approximates_the_exact_gaussian_mmd() -> None:
    centres = topics(5)
    rng = np.random.default_rng(3)
    x = sample(centres, [1] * 5, 600, rng)
    y = sample(centres, [3, 1, 1, 1, 1], 400, rng)
    exact = mmd2_exact(x, y, 1.0)
    omega = rff_frequencies(DIM, 8192, 1.0, rng)
    zx, zy = rff_map(x, omega), rff_map(y, omega)
    approx = float(((zx.mean(0) - zy.mean(0)) ** 2).sum())
    assert approx == pytest.approx(exact, rel=0.1)


def test_naive_baseline_agrees_on_a_clear_shift() -> None:
    centres = topics(4)
    rng = np.random.default_rng(4)
    x, y = sample(centres, [1, 1, 1, 1], 150, rng), sample(centres, [1, 1, 1, 5], 100, rng)
    mmd2, p = naive_mmd_permutation_test(x, y, 1.0, 50, rng)
    assert mmd2 == pytest.approx(mmd2_exact(x, y, 1.0), rel=1e-4)
    assert p == pytest.approx(1 / 51)


def test_centroid_cosine_distance() -> None:
    e = np.eye(3, dtype=np.float32)
    assert centroid_cosine_distance(e[:1], e[:1]) == pytest.approx(0.0, abs=1e-7)
    assert centroid_cosine_distance(e[:1], e[1:2]) == pytest.approx(1.0)


def test_kmeans_recovers_separated_topics() -> None:
    centres = topics(4)
    rng = np.random.default_rng(5)
    x = sample(centres, [1, 1, 1, 1], 800, rng)
    found, labels, _ = kmeans(x, 4, rng)
    # Every true centre has a found centroid close to it.
    sims = centres @ normalize_rows(found).T
    assert (sims.max(1) > 0.95).all()
    assert len(set(labels.tolist())) == 4


def test_share_shift_known_answer() -> None:
    ref, cur = np.array([50, 30, 20]), np.array([20, 30, 50])
    result = share_shift(ref, cur)
    p, q = ref / 100, cur / 100
    assert result.psi == pytest.approx(float(((q - p) * np.log(q / p)).sum()))
    chi2, pval, dof, _ = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert result.chi2 == pytest.approx(chi2) and result.p_value == pytest.approx(pval)
    assert result.dof == dof == 2
    assert result.psi_terms[1] == pytest.approx(0.0)


def test_new_topic_test() -> None:
    rate, base, p = new_topic_test(30, 100, 10, 1000)
    assert (rate, base) == (0.3, 0.01) and p < 1e-10
    assert new_topic_test(1, 100, 10, 1000)[2] > 0.5


PARAMS = StatParams(
    permutations=200, clusters=6, rff_features=512, alpha_test=alpha_per_test(0.01, 5)
)


def test_cluster_share_shift_names_the_right_cluster() -> None:
    centres = topics(6)
    rng = np.random.default_rng(6)
    ref = build_reference(sample(centres, [1] * 6, 1500, rng), PARAMS, seed=1)
    window = sample(centres, [1, 1, 4, 1, 1, 1], 400, rng)  # topic 2 from 1/6 to 4/9 of traffic
    result = compare(ref, window, PARAMS, seed=2)
    top = int(np.argmax(result.shares.psi_terms))
    assert float(normalize_rows(ref.topics.centroids)[top] @ centres[2]) > 0.95
    assert result.shares.cur_share[top] > 2 * result.shares.ref_share[top]
    assert "cluster_shift" in result.reasons and "mmd" in result.reasons
    assert "new_topic" not in result.reasons


def test_new_topic_rate_picks_up_a_new_cluster() -> None:
    centres = topics(7)
    rng = np.random.default_rng(7)
    ref = build_reference(sample(centres[:6], [1] * 6, 1500, rng), PARAMS, seed=1)
    window = sample(centres, [1, 1, 1, 1, 1, 1, 2.6], 400, rng)  # ~30% from an unseen topic
    result = compare(ref, window, PARAMS, seed=3)
    assert result.new_topic_rate > 0.25 and result.new_topic_base < 0.03
    assert "new_topic" in result.reasons
    # The far rows are the new topic's.
    nearest_true = (window[result.far] @ centres.T).argmax(1)
    assert float((nearest_true == 6).mean()) > 0.9


def test_a_day_of_clean_windows_raises_no_alarm() -> None:
    """288 windows (a day at one every 5 minutes) from the reference's distribution."""
    centres = topics(6)
    rng = np.random.default_rng(8)
    shares = [3, 2, 2, 1, 1, 1]
    ref = build_reference(sample(centres, shares, 1500, rng), PARAMS, seed=1)
    flagged = 0
    smallest = 1.0
    with blas_threads(1):  # the job's setting; multi-threaded BLAS crawls on shared cores
        for i in range(288):
            result = compare(ref, sample(centres, shares, 150, rng), PARAMS, seed=100 + i)
            flagged += result.drifted
            smallest = min(smallest, result.mmd.p_value, result.shares.p_value, result.new_topic_p)
    assert flagged == 0, f"{flagged} false alarms in a clean day (smallest p {smallest:.2e})"


def test_same_inputs_same_results() -> None:
    centres = topics(6)
    rng = np.random.default_rng(9)
    x, y = sample(centres, [1] * 6, 800, rng), sample(centres, [2, 1, 1, 1, 1, 1], 200, rng)
    a = compare(build_reference(x, PARAMS, 11), y, PARAMS, 12)
    b = compare(build_reference(x, PARAMS, 11), y, PARAMS, 12)
    assert a.mmd == b.mmd and a.reasons == b.reasons
    assert np.array_equal(a.cur_labels, b.cur_labels) and a.shares.psi == b.shares.psi
