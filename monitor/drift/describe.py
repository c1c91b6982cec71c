"""A drift report row: the tests' figures, and what moved, in terms a person can check.

Besides the statistics, a report names its most shifted clusters (plus the group of new
topics), each with its top terms (`monitor.drift.terms`), its shares in the reference and
the window, example prompts from the window, and how the model answered its members: the
refusal rate (the cheap check) and the LLM judge's scores, in the reference and the window.

A reference too small to test against (`WindowTester.enough`) gives a report too: no
test ran, ``reasons`` is ``[not_enough_reference]`` and ``drifted`` is 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from monitor.config import DriftSettings
from monitor.drift.comparison import Comparison
from monitor.drift.evaluate import FittedReference
from monitor.drift.load import Embeddings, ReferenceSpan
from monitor.drift.reports import NOT_ENOUGH_REFERENCE
from monitor.drift.terms import top_terms
from monitor.drift.vectors import normalize_rows
from monitor.store.base import Store
from monitor.store.queries import drift as queries
from monitor.times import iso

#: Judge score names that are not a rubric dimension on a comparable scale.
_NOT_DIMENSIONS = frozenset({"pairwise"})
_EXAMPLE_CHARS = 200
#: Prompt characters read per window event for the top terms (a topic shows early).
_TERM_CHARS = 400
_TERMS = 5

_Group = tuple[int, np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, np.dtype[np.bool_]]]
"""(cluster, reference members, window members); cluster -1 is the new-topic group."""


class ReportDescriber:
    """Builds ``drift_reports`` rows; reads the judge scores and prompts they quote."""

    def __init__(self, settings: DriftSettings, store: Store, alpha_test: float) -> None:
        self.settings = settings
        self.store = store
        self.alpha_test = alpha_test

    def report_row(
        self,
        as_of: datetime,
        window_start: datetime,
        scope: str,
        ref: ReferenceSpan,
        fitted: FittedReference,
        window: Embeddings,
        result: Comparison,
    ) -> dict[str, Any]:
        """The ``drift_reports`` row of one scope at ``as_of``."""
        clusters = self.top_clusters(ref, window_start, as_of, scope, fitted, window, result)
        shares = result.shares
        n_ref = len(fitted.event_ids)
        ratio = shares.cur_share / np.maximum(shares.ref_share, 1.0 / max(n_ref, 1))
        return {
            **_head(as_of, window_start, scope, ref, fitted.ref_id, n_ref, len(window)),
            "drifted": int(result.drifted),
            "new_topic": int("new_topic" in result.reasons),
            "reasons": list(result.reasons),
            "alpha_test": self.alpha_test,
            "mmd2": result.mmd.mmd2,
            "mmd_effect": result.mmd.effect,
            "mmd_p_value": result.mmd.p_value,
            "mmd_p_perm": result.mmd.p_perm,
            "permutations": result.mmd.permutations,
            "centroid_cosine": result.centroid_cosine,
            "clusters": len(shares.ref_share),
            "psi": shares.psi,
            "chi2": shares.chi2,
            "chi2_p_value": shares.p_value,
            "max_share_ratio": float(ratio.max()) if ratio.size else 0.0,
            "new_topic_rate": result.new_topic_rate,
            "new_topic_base_rate": result.new_topic_base,
            "new_topic_p_value": result.new_topic_p,
            "top_clusters": orjson.dumps(clusters).decode(),
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }

    def short_row(
        self,
        as_of: datetime,
        window_start: datetime,
        scope: str,
        ref: ReferenceSpan,
        n_reference: int,
        n_window: int,
    ) -> dict[str, Any]:
        """The row of a scope whose reference is too small: no test ran, nothing drifted."""
        return {
            **_head(as_of, window_start, scope, ref, "", n_reference, n_window),
            "drifted": 0,
            "new_topic": 0,
            "reasons": [NOT_ENOUGH_REFERENCE],
            "alpha_test": self.alpha_test,
            **dict.fromkeys(_FIGURES, 0.0),
            **dict.fromkeys(_P_VALUES, 1.0),
            "permutations": 0,
            "clusters": 0,
            "top_clusters": "[]",
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }

    def top_clusters(
        self,
        ref: ReferenceSpan,
        window_start: datetime,
        as_of: datetime,
        scope: str,
        fitted: FittedReference,
        window: Embeddings,
        result: Comparison,
    ) -> list[dict[str, Any]]:
        """The most shifted clusters (plus the new-topic group): shares, examples, judge change."""
        shares = result.shares
        groups = self._groups(fitted, result)
        ref_judge = self._judge(ref.start, ref.end, ref.version_filter)
        cur_judge = self._judge(window_start, as_of, scope)
        picks = self._examples(groups, window)
        prompts = queries.prompts(self.store, window_start, as_of, sorted(window.ids), _TERM_CHARS)
        ref_refused = queries.refused(self.store, ref.start, ref.end)
        cur_refused = queries.refused(self.store, window_start, as_of)
        out: list[dict[str, Any]] = []
        for cluster, ref_mask, cur_mask in groups:
            if cluster >= 0:
                ref_share, cur_share = (
                    float(shares.ref_share[cluster]),
                    float(shares.cur_share[cluster]),
                )
                psi_term = float(shares.psi_terms[cluster])
            else:
                ref_share, cur_share, psi_term = result.new_topic_base, result.new_topic_rate, 0.0
            ref_members = [fitted.event_ids[i] for i in np.flatnonzero(ref_mask)]
            cur_members = [window.ids[i] for i in np.flatnonzero(cur_mask)]
            rest = [window.ids[i] for i in np.flatnonzero(~cur_mask)]
            # The new-topic group has no reference members: all reference traffic is the
            # yardstick of its refusal rate.
            ref_answered = ref_members or fitted.event_ids
            out.append(
                {
                    "cluster": cluster,
                    "label": "new_topic" if cluster < 0 else f"cluster_{cluster}",
                    "terms": top_terms(
                        [prompts.get(i, "") for i in cur_members],
                        [prompts.get(i, "") for i in rest],
                        _TERMS,
                    ),
                    "ref_share": round(ref_share, 4),
                    "cur_share": round(cur_share, 4),
                    "ratio": round(cur_share / max(ref_share, 1e-4), 2),
                    "psi": round(psi_term, 4),
                    "n_window": len(cur_members),
                    "examples": _distinct(
                        (prompts.get(i, "") for i in picks.get(cluster, [])),
                        self.settings.examples_per_cluster,
                    ),
                    "refusal": {
                        "reference": _rate(ref_refused, ref_answered),
                        "window": _rate(cur_refused, cur_members),
                        "n_reference": len(ref_answered),
                        "n_window": len(cur_members),
                    },
                    "judge": judge_change(ref_judge, ref_members, cur_judge, cur_members),
                }
            )
        return out

    def _groups(self, fitted: FittedReference, result: Comparison) -> list[_Group]:
        shares = result.shares
        ref_labels = fitted.model.topics.ref_labels
        # Clusters that grew come first (that is where a new topic or a surge shows), then
        # those that shrank; each by its PSI contribution.
        grew = shares.cur_share > shares.ref_share
        order = np.lexsort((-shares.psi_terms, ~grew))[: self.settings.top_clusters]
        groups: list[_Group] = [(int(c), ref_labels == c, result.cur_labels == c) for c in order]
        if result.far.any() and result.new_topic_rate > result.new_topic_base:
            groups.append((-1, np.zeros(len(ref_labels), dtype=bool), result.far))
        return groups

    def _examples(self, groups: list[_Group], window: Embeddings) -> dict[int, list[str]]:
        """Event ids of each group's members, nearest its window centre first."""
        per_cluster = self.settings.examples_per_cluster
        cur_norm = normalize_rows(window.vectors)
        picks: dict[int, list[str]] = {}
        for cluster, _, cur_mask in groups:
            idx = np.flatnonzero(cur_mask)
            if idx.size and per_cluster:
                # Examples nearest the window's own centre of the group: they show what the
                # window brought into the cluster, not what the reference already had there.
                centre = cur_norm[idx].mean(0)
                closest = idx[np.argsort(-(cur_norm[idx] @ centre), kind="stable")]
                picks[cluster] = [window.ids[i] for i in closest]
        return picks

    def _judge(self, start: datetime, end: datetime, version: str) -> dict[str, dict[str, float]]:
        """Judge scores by event: {event_id: {dimension: value}} (mean over judge versions)."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for row in queries.judge_scores(self.store, start, end, version):
            if row["name"] not in _NOT_DIMENSIONS:
                out[row["event_id"]][row["name"]] = float(row["value"])
        return out


#: Statistics of a report that mean "no difference" at 0, and its p-values.
_FIGURES = (
    "mmd2",
    "mmd_effect",
    "centroid_cosine",
    "psi",
    "chi2",
    "max_share_ratio",
    "new_topic_rate",
    "new_topic_base_rate",
)
_P_VALUES = ("mmd_p_value", "mmd_p_perm", "chi2_p_value", "new_topic_p_value")


def _head(
    as_of: datetime,
    window_start: datetime,
    scope: str,
    ref: ReferenceSpan,
    ref_id: str,
    n_reference: int,
    n_window: int,
) -> dict[str, Any]:
    """What every report says about its window and reference."""
    return {
        "ts": iso(as_of),
        "model_version": scope,
        "window_start": iso(window_start),
        "reference_kind": ref.kind,
        "reference_start": iso(ref.start),
        "reference_end": iso(ref.end),
        "reference_id": ref_id,
        "embedder": ref.embedder,
        "n_reference": n_reference,
        "n_window": n_window,
    }


def _distinct(texts: Iterable[str], k: int) -> list[str]:
    """The first ``k`` different non-empty texts, cut to ``_EXAMPLE_CHARS``: templated
    traffic repeats prompts word for word, and three copies of one show less than one."""
    out: list[str] = []
    for text in texts:
        cut = text[:_EXAMPLE_CHARS]
        if cut and cut not in out:
            out.append(cut)
            if len(out) == k:
                break
    return out


def _rate(flagged: set[str], ids: Sequence[str]) -> float | None:
    return round(sum(i in flagged for i in ids) / len(ids), 4) if ids else None


def judge_change(
    ref_scores: dict[str, dict[str, float]],
    ref_ids: Sequence[str],
    cur_scores: dict[str, dict[str, float]],
    cur_ids: Sequence[str],
) -> dict[str, dict[str, float | int | None]]:
    """Per judge dimension: mean in the reference and the window members, and the change."""

    def collect(scores: dict[str, dict[str, float]], ids: Sequence[str]) -> dict[str, list[float]]:
        acc: dict[str, list[float]] = defaultdict(list)
        for event_id in ids:
            for name, value in scores.get(event_id, {}).items():
                acc[name].append(value)
        return acc

    ref, cur = collect(ref_scores, ref_ids), collect(cur_scores, cur_ids)
    out: dict[str, dict[str, float | int | None]] = {}
    for name in sorted(set(ref) | set(cur)):
        r = float(np.mean(ref[name])) if ref.get(name) else None
        c = float(np.mean(cur[name])) if cur.get(name) else None
        out[name] = {
            "reference": None if r is None else round(r, 3),
            "window": None if c is None else round(c, 3),
            "delta": None if r is None or c is None else round(c - r, 3),
            "n_reference": len(ref.get(name, [])),
            "n_window": len(cur.get(name, [])),
        }
    return out
