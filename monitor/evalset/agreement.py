"""Judge-human agreement statistics: Cohen's kappa, Spearman's rho, a confusion table and
a cluster bootstrap interval for kappa. Pure numpy/scipy, no store and no eval-set types.

Kappa corrects raw agreement for the agreement two raters would reach by chance given
their own label frequencies: ``1 - sum(W * O) / sum(W * E)`` with ``O`` the observed
confusion table, ``E`` the table chance predicts (outer product of the margins) and ``W``
the disagreement weights: 0 on the diagonal and 1 elsewhere (plain kappa, for pass/fail),
or ``(i - j)^2`` (quadratic weights, for the 1-5 scale, where 4 against 5 is a smaller
disagreement than 1 against 5). Kappa is undefined (NaN) when chance agreement is
perfect, i.e. both raters used one and the same label throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

Weights = Literal["plain", "quadratic"]
Floats = npt.NDArray[np.float64]

SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The rubric's score scale (the categories of quadratic-weighted kappa)."""
VERDICTS: tuple[str, ...] = ("fail", "pass")
"""The categories of the pass/fail kappa."""
PASS_THRESHOLD = 3.5
"""The judge passes an item when the mean of its dimension scores is at least this: the
middle of the 1-5 scale's upper half, so "somewhat useful, important parts missing" (3)
fails and "useful, with small gaps" (4) passes."""
WEAK_KAPPA = 0.4
"""Below this kappa (the usual "fair" to "moderate" boundary), do not alert on the judge
alone."""
MIN_ITEMS = 30
"""Fewer labelled items than this give too wide an interval to act on."""


def to_scale(value: float) -> int:
    """A judge score (possibly fractional, e.g. a mean) as a 1-5 category: rounded half up
    and clipped, so 3.5 counts as 4 and an out-of-range 0.8 as 1."""
    return int(min(max(math.floor(value + 0.5), SCALE[0]), SCALE[-1]))


def confusion(
    judge: Sequence[object], human: Sequence[object], labels: Sequence[object]
) -> npt.NDArray[np.int64]:
    """Counts of (judge label, human label): rows are the judge's, columns the human's,
    both in ``labels`` order. `ValueError` for a label not in ``labels``."""
    index = {label: i for i, label in enumerate(labels)}
    if len(judge) != len(human):
        raise ValueError("judge and human labels differ in length")
    try:
        rows = np.array([index[j] for j in judge], dtype=np.int64)
        cols = np.array([index[h] for h in human], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of {list(labels)}") from exc
    k = len(labels)
    return np.bincount(rows * k + cols, minlength=k * k).reshape(k, k)


def _weights(k: int, kind: Weights) -> Floats:
    i, j = np.indices((k, k))
    diff: Floats = (i - j).astype(np.float64)
    return diff**2 if kind == "quadratic" else (diff != 0).astype(np.float64)


def kappa_from_tables(tables: npt.NDArray[np.int64] | Floats, kind: Weights) -> Floats:
    """Kappa of each ``(..., k, k)`` confusion table (NaN where undefined), vectorised so
    a thousand bootstrap tables cost one array expression."""
    counts = np.asarray(tables, dtype=np.float64)
    k = counts.shape[-1]
    w = _weights(k, kind)
    total = counts.sum(axis=(-2, -1))
    rows = counts.sum(axis=-1)
    cols = counts.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = rows[..., :, None] * cols[..., None, :] / total[..., None, None]
        observed_d = (w * counts).sum(axis=(-2, -1))
        expected_d = (w * expected).sum(axis=(-2, -1))
        kappa = 1.0 - observed_d / expected_d
    result: Floats = np.where(expected_d > 0, kappa, np.nan)
    return result


def cohen_kappa(
    judge: Sequence[object], human: Sequence[object], labels: Sequence[object], kind: Weights
) -> float:
    """Cohen's kappa of two raters over the same items (NaN where undefined)."""
    return float(kappa_from_tables(confusion(judge, human, labels), kind))


def spearman(judge: Sequence[float], human: Sequence[float]) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant or
    there are fewer than two pairs."""
    if len(judge) < 2 or len(set(judge)) < 2 or len(set(human)) < 2:
        return math.nan
    return float(stats.spearmanr(judge, human).statistic)


def bootstrap_kappa(
    cells: npt.NDArray[np.int64],
    clusters: npt.NDArray[np.int64],
    k: int,
    kind: Weights,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of kappa, resampling clusters (items) with replacement.

    ``cells[i]`` is pair i's confusion cell (``judge_index * k + human_index``) and
    ``clusters[i]`` its item: with several reviewers an item gives several pairs that are
    not independent, so whole items are drawn. Each resample is a vector of how many times
    each item was drawn (multinomial), and its confusion tables come from one matrix
    product with the items' own tables. Resamples where kappa is undefined are dropped;
    (NaN, NaN) if none is left.
    """
    _, item = np.unique(clusters, return_inverse=True)
    m = int(item.max()) + 1 if len(item) else 0
    if m == 0:
        return math.nan, math.nan
    per_item = np.zeros((m, k * k), dtype=np.float64)
    np.add.at(per_item, (item, cells), 1.0)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(m, np.full(m, 1.0 / m), size=resamples).astype(np.float64)
    tables = (draws @ per_item).reshape(resamples, k, k)
    kappas = kappa_from_tables(tables, kind)
    kappas = kappas[~np.isnan(kappas)]
    if len(kappas) == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(kappas, [tail, 100.0 - tail])
    return float(low), float(high)


@dataclass
class Agreement:
    """Judge against human on one dimension (or on the pass/fail verdict)."""

    dimension: str
    kind: Weights
    n: int
    kappa: float
    kappa_low: float
    kappa_high: float
    spearman: float
    labels: list[str]
    confusion: list[list[int]]
    """Rows: the judge's label; columns: the human's; both in ``labels`` order."""
    warnings: list[str] = field(default_factory=list)


def measure(
    dimension: str,
    judge: Sequence[float | str],
    human: Sequence[float | str],
    clusters: Sequence[str],
    *,
    judge_ranks: Sequence[float] | None = None,
    human_ranks: Sequence[float] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> Agreement:
    """Agreement on one dimension. Numbers are 1-5 scores (quadratic kappa on `to_scale`
    categories, Spearman on the raw values); strings are verdicts (plain kappa, Spearman on
    ``judge_ranks`` / ``human_ranks`` when given, e.g. the judge's mean score against 0/1).
    ``clusters`` names each pair's item for the bootstrap."""
    verdicts = bool(judge) and isinstance(judge[0], str)
    kind: Weights = "plain" if verdicts else "quadratic"
    labels: tuple[object, ...] = VERDICTS if verdicts else SCALE
    j_cat = list(judge) if verdicts else [to_scale(float(v)) for v in judge]
    h_cat = list(human) if verdicts else [to_scale(float(v)) for v in human]
    table = confusion(j_cat, h_cat, labels)
    if verdicts:
        rho = spearman(judge_ranks, human_ranks) if judge_ranks and human_ranks else math.nan
    else:
        rho = spearman([float(v) for v in judge], [float(v) for v in human])
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    cells = np.array([index[a] * k + index[b] for a, b in zip(j_cat, h_cat, strict=True)])
    cluster_of = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    cluster_ids = np.array([cluster_of[c] for c in clusters], dtype=np.int64)
    kappa = float(kappa_from_tables(table, kind))
    low, high = bootstrap_kappa(
        cells.astype(np.int64), cluster_ids, k, kind, resamples=resamples, seed=seed
    )
    result = Agreement(
        dimension,
        kind,
        len(j_cat),
        kappa,
        low,
        high,
        rho,
        [str(label) for label in labels],
        table.tolist(),
    )
    result.warnings = warnings_for(dimension, kappa, len(j_cat))
    return result


def warnings_for(dimension: str, kappa: float, n: int) -> list[str]:
    """What to do when the agreement on ``dimension`` is too weak or too thin to trust."""
    out: list[str] = []
    if math.isnan(kappa) or kappa < WEAK_KAPPA:
        shown = "undefined" if math.isnan(kappa) else f"{kappa:.2f}"
        out.append(
            f"{dimension}: weak agreement (kappa {shown} < {WEAK_KAPPA}): do not alert on "
            "this judge alone; label more items / try a stronger judge model / check the rubric"
        )
    if n < MIN_ITEMS:
        out.append(
            f"{dimension}: only {n} labelled items: label at least {MIN_ITEMS} items for a "
            "usable estimate"
        )
    return out
