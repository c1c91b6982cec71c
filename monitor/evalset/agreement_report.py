"""Judge against human on one eval-set version: pair the judge's scores with the human
labels, measure each dimension (`monitor.evalset.agreement`) and store the result.

The judge's scores of an item are its own ``judge.<dimension>`` scores (captured with it;
judge version ``''``), or else the latest judgment with scores among its source events in
the store. The judge passes an item when its ``overall`` score, or the mean of its
dimension scores, is at least the threshold (`agreement.PASS_THRESHOLD`, 3.5). Human
labels are every reviewer's current label; each reviewer's label is paired with the
judge on its own (n counts pairs), and reviewers are compared with each other too.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from monitor.evalset.agreement import (
    PASS_THRESHOLD,
    Agreement,
    cohen_kappa,
    measure,
    to_scale,
)
from monitor.evalset.items import EvalItem
from monitor.evalset.labels import Label
from monitor.evalset.review import JUDGE_PREFIX
from monitor.store.base import Store
from monitor.store.queries.agreement import latest_judgments, store_agreement
from monitor.times import iso, now_utc, parse_ts

log = logging.getLogger("vigil.evalset.agreement")

VERDICT = "verdict"
"""The dimension name of the pass/fail agreement."""


@dataclass(frozen=True)
class JudgeView:
    """The judge's scores of one item, and which judge gave them ('' for item scores)."""

    scores: dict[str, float]
    version: str

    def passed(self, threshold: float) -> tuple[bool, float]:
        """Whether the judge passes the item, and the score that decided it."""
        dims = [v for k, v in self.scores.items() if k != "overall"]
        overall = self.scores.get("overall", sum(dims) / len(dims) if dims else 0.0)
        return overall >= threshold, overall


def judge_views(store: Store | None, items: list[EvalItem]) -> dict[str, JudgeView]:
    """item id -> the judge's scores of it, for the items that have any."""
    out: dict[str, JudgeView] = {}
    wanted: list[EvalItem] = []
    for item in items:
        own = {
            k[len(JUDGE_PREFIX) :]: float(v)
            for k, v in item.scores.items()
            if k.startswith(JUDGE_PREFIX)
        }
        if own:
            out[item.id] = JudgeView(own, "")
        elif item.source_event_ids:
            wanted.append(item)
    if not wanted or store is None:
        return out
    ids = sorted({e for item in wanted for e in item.source_event_ids})
    by_event = {row["event_id"]: row for row in latest_judgments(store, ids)}
    for item in wanted:
        found = [by_event[e] for e in item.source_event_ids if e in by_event]
        if found:
            row = max(found, key=lambda r: parse_ts(r["created_at"]))
            scores = {k: float(v) for k, v in row["scores"].items()}
            out[item.id] = JudgeView(scores, str(row["judge_version"]))
    return out


@dataclass
class InterReviewer:
    """Two reviewers against each other on one dimension."""

    a: str
    b: str
    dimension: str
    n: int
    kappa: float


@dataclass
class Report:
    evalset: str
    version: str
    threshold: float
    measured_at: str
    results: list[tuple[str, Agreement]] = field(default_factory=list)
    """(judge version, agreement) per dimension, ``verdict`` first."""
    reviewers: list[str] = field(default_factory=list)
    inter: list[InterReviewer] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """The ``judge_agreement`` rows of this report."""
        return [
            {
                "evalset": self.evalset,
                "version": self.version,
                "judge_version": judge_version,
                "dimension": a.dimension,
                "n": a.n,
                "kappa": a.kappa,
                "kappa_kind": a.kind,
                "kappa_low": a.kappa_low,
                "kappa_high": a.kappa_high,
                "spearman": a.spearman,
                "measured_at": self.measured_at,
            }
            for judge_version, a in self.results
        ]


@dataclass
class _Pairs:
    judge: list[Any] = field(default_factory=list)
    human: list[Any] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    judge_ranks: list[float] = field(default_factory=list)
    human_ranks: list[float] = field(default_factory=list)


def pair_up(
    views: dict[str, JudgeView], labels: list[Label], threshold: float
) -> dict[tuple[str, str], _Pairs]:
    """(judge version, dimension) -> the judge-human pairs on it."""
    pairs: dict[tuple[str, str], _Pairs] = defaultdict(_Pairs)
    for label in labels:
        view = views.get(label.item_id)
        if view is None:
            continue
        for dim, human in label.scores.items():
            if dim in view.scores:
                p = pairs[(view.version, dim)]
                p.judge.append(view.scores[dim])
                p.human.append(human)
                p.items.append(label.item_id)
        if label.verdict and view.scores:
            passed, score = view.passed(threshold)
            p = pairs[(view.version, VERDICT)]
            p.judge.append("pass" if passed else "fail")
            p.human.append(label.verdict)
            p.items.append(label.item_id)
            p.judge_ranks.append(score)
            p.human_ranks.append(1.0 if label.verdict == "pass" else 0.0)
    return pairs


def build_report(
    evalset: str,
    version: str,
    views: dict[str, JudgeView],
    labels: list[Label],
    *,
    threshold: float = PASS_THRESHOLD,
    resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """Measure every dimension that has judge-human pairs (pure: no store)."""
    report = Report(evalset, version, threshold, iso(now_utc()))
    pairs = pair_up(views, labels, threshold)
    order = sorted(pairs, key=lambda key: (key[1] != VERDICT, key[1], key[0]))
    for judge_version, dim in order:
        p = pairs[(judge_version, dim)]
        agreement = measure(
            dim,
            p.judge,
            p.human,
            p.items,
            judge_ranks=p.judge_ranks or None,
            human_ranks=p.human_ranks or None,
            resamples=resamples,
            seed=seed,
        )
        report.results.append((judge_version, agreement))
    report.reviewers = sorted({label.reviewer for label in labels})
    report.inter = inter_reviewer(labels)
    return report


def inter_reviewer(labels: list[Label]) -> list[InterReviewer]:
    """Kappa between each two reviewers on the items both labelled, per dimension."""
    by_reviewer: dict[str, dict[str, Label]] = defaultdict(dict)
    for label in labels:
        by_reviewer[label.reviewer][label.item_id] = label
    out: list[InterReviewer] = []
    for a, b in itertools.combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
        la = [by_reviewer[a][i] for i in shared]
        lb = [by_reviewer[b][i] for i in shared]
        pairs = [(x.verdict, y.verdict) for x, y in zip(la, lb, strict=True)]
        both = [(va, vb) for va, vb in pairs if va and vb]
        if both:
            ja, jb = zip(*both, strict=True)
            kappa = cohen_kappa(ja, jb, ("fail", "pass"), "plain")
            out.append(InterReviewer(a, b, VERDICT, len(both), kappa))
        dims = sorted({d for x in la for d in x.scores})
        for dim in dims:
            scored = [
                (to_scale(x.scores[dim]), to_scale(y.scores[dim]))
                for x, y in zip(la, lb, strict=True)
                if dim in x.scores and dim in y.scores
            ]
            if scored:
                sa, sb = zip(*scored, strict=True)
                kappa = cohen_kappa(sa, sb, (1, 2, 3, 4, 5), "quadratic")
                out.append(InterReviewer(a, b, dim, len(scored), kappa))
    return out


def save_report(store: Store, report: Report) -> None:
    """Store the report's measurements in ``judge_agreement``."""
    store_agreement(store, report.rows())
    log.info(
        "judge agreement stored",
        extra={"evalset": report.evalset, "version": report.version, "rows": len(report.results)},
    )
