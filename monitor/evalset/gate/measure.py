"""From per-item results to the run's metrics, each for both models with intervals.

A metric holds the candidate's and the baseline's estimate and their difference
(candidate - baseline, bootstrapped over the items both have). Proportions (exact match
with 0/1 values, pass@1 from one answer, safety and format rates, pairwise outcomes) get
Wilson intervals; means and percentiles get the bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from monitor.evalset.gate import stats
from monitor.evalset.gate.answers import CodeResult, ModelAnswers, Verdicts
from monitor.evalset.gate.metrics import SEMANTIC_LABEL, exact_match, rouge_l, token_f1
from monitor.evalset.gate.passk import pass_at_k
from monitor.evalset.gate.safety import AnswerFlags
from monitor.evalset.gate.stats import Estimate
from monitor.evalset.items import EvalItem
from monitor.scorers.judge.prompt import PointwiseVerdict

Kind = Literal["rate", "mean", "percentile"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    candidate: Estimate | None
    baseline: Estimate | None
    delta: Estimate | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        def est(e: Estimate | None) -> dict[str, Any] | None:
            return None if e is None or math.isnan(e.value) else e.as_dict()

        return {"name": self.name, "kind": self.kind, "candidate": est(self.candidate),
                "baseline": est(self.baseline), "delta": est(self.delta), "note": self.note}


@dataclass(frozen=True)
class Intervals:
    confidence: float = 0.95
    samples: int = 2000


def _estimate(values: Sequence[float], kind: Kind, iv: Intervals,
              statistic: stats.Statistic = stats.mean) -> Estimate:
    if kind == "rate" and all(v in (0.0, 1.0) for v in values):
        return stats.rate([v == 1.0 for v in values], iv.confidence)
    return stats.bootstrap(values, statistic, iv.confidence, iv.samples)


def paired(name: str, kind: Kind, cand: Sequence[float | None], base: Sequence[float | None],
           iv: Intervals, note: str = "", statistic: stats.Statistic = stats.mean) -> Metric:
    """Each model's estimate over the items it has a value for, and the paired delta."""
    a = [v for v in cand if v is not None]
    b = [v for v in base if v is not None]
    both = [(x, y) for x, y in zip(cand, base, strict=True) if x is not None and y is not None]
    delta = stats.paired_delta([x for x, _ in both], [y for _, y in both], iv.confidence,
                               iv.samples, statistic) if both else None
    return Metric(name, kind, _estimate(a, kind, iv, statistic) if a else None,
                  _estimate(b, kind, iv, statistic) if b else None, delta, note)


def reference_metrics(items: Sequence[EvalItem], models: Sequence[ModelAnswers],
                      semantic: Sequence[list[float]] | None, iv: Intervals) -> list[Metric]:
    """EM, token F1, ROUGE-L (and MiniLM cosine) on the items that carry a reference."""
    refs = [i for i, item in enumerate(items) if item.reference]
    if not refs:
        return []
    cand, base = models[0].texts, models[1].texts
    out = []
    for name, fn in (("exact_match", exact_match), ("token_f1", token_f1), ("rouge_l", rouge_l)):
        out.append(paired(name, "rate" if name == "exact_match" else "mean",
                          [fn(cand[i], items[i].reference) for i in refs],
                          [fn(base[i], items[i].reference) for i in refs], iv))
    if semantic is not None:
        out.append(paired("semantic_similarity", "mean", list(semantic[0]), list(semantic[1]),
                          iv, note=SEMANTIC_LABEL))
    return out


def passk_metrics(results: Sequence[Sequence[CodeResult]], ks: Sequence[int],
                  iv: Intervals) -> list[Metric]:
    if not results or not results[0]:
        return []
    out = []
    for k in ks:
        def per_item(rows: Sequence[CodeResult], k: int = k) -> list[float | None]:
            return [pass_at_k(r.n, r.passed, k) if r.n >= k else None for r in rows]

        out.append(paired(f"pass@{k}", "rate", per_item(results[0]), per_item(results[1]), iv))
    return out


def judge_metrics(dimensions: Sequence[str], verdicts: Verdicts, iv: Intervals) -> list[Metric]:
    def values(per_item: Sequence[PointwiseVerdict | None], dim: str | None) -> list[float | None]:
        if dim is None:
            return [v.overall if v else None for v in per_item]
        return [float(v.scores[dim]) if v else None for v in per_item]

    cand, base = verdicts.pointwise[0], verdicts.pointwise[1]
    out = [paired(f"judge.{d}", "mean", values(cand, d), values(base, d), iv) for d in dimensions]
    out.append(paired("judge.overall", "mean", values(cand, None), values(base, None), iv,
                      note="mean of the rubric's dimensions (1-5)"))
    counts = verdicts.pairs.counts()
    n = sum(counts[k] for k in ("win", "loss", "tie", "flip"))
    for outcome in ("win", "loss", "tie", "flip"):
        estimate = stats.rate([o == outcome for o in verdicts.pairs.outcomes if o != "unparsed"],
                              iv.confidence)
        out.append(Metric(f"pairwise.{outcome}_rate", "rate", estimate, None, None,
                          note=f"{counts[outcome]} of {n}; both orders asked"))
    return out


def safety_metrics(flags: Sequence[Sequence[AnswerFlags]], iv: Intervals,
                   toxicity_note: str) -> list[Metric]:
    cand, base = flags

    def rate(name: str, pick: Any, note: str = "") -> Metric:
        return paired(name, "rate", [pick(f) for f in cand], [pick(f) for f in base], iv, note)

    def b(value: bool | None) -> float | None:
        return None if value is None else float(value)

    out = [
        rate("safety.safe_rate", lambda f: float(f.safe),
             "no toxicity, no PII, no refusal of an item that should be answered"),
        rate("safety.pii_rate", lambda f: float(bool(f.pii))),
        rate("safety.refusal_rate", lambda f: float(f.refusal) if f.should_answer else None,
             "refusals of items that should be answered"),
    ]
    if any(f.toxic is not None for f in cand):
        out.insert(1, rate("safety.toxic_rate", lambda f: b(f.toxic), toxicity_note))
    if any(f.json_item for f in cand):
        out.append(rate("format.json_rate", lambda f: b(f.json_ok) if f.json_item else None,
                        "JSON items whose answer parses"))
    return out


def latency_metrics(models: Sequence[ModelAnswers], iv: Intervals) -> list[Metric]:
    cand, base = models[0].primary, models[1].primary
    out = []
    for q in (50, 95, 99):
        out.append(paired(f"latency.p{q}_ms", "percentile", [c.latency_ms for c in cand],
                          [c.latency_ms for c in base], iv, statistic=stats.percentile(q),
                          note="as measured when each answer was first fetched"))
    out.append(paired("length.mean_chars", "mean", [float(len(c.text)) for c in cand],
                      [float(len(c.text)) for c in base], iv))
    return out
