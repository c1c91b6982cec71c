"""A drift report row: the tests' figures, and what moved, in terms a person can check.

Besides the statistics, a report names its most shifted clusters (plus the group of new
topics), each with its shares in the reference and the window, example prompts from the
window, and how the LLM judge's scores of its members changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from monitor.config import DriftSettings
from monitor.drift.comparison import Comparison
from monitor.drift.evaluate import FittedReference
from monitor.drift.load import Embeddings, ReferenceSpan
from monitor.drift.vectors import normalize_rows
from monitor.store.base import Store
from monitor.store.queries import drift as queries
from monitor.times import iso

#: Judge score names that are not a rubric dimension on a comparable scale.
_NOT_DIMENSIONS = frozenset({"pairwise"})
_EXAMPLE_CHARS = 200

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
            "ts": iso(as_of),
            "model_version": scope,
            "window_start": iso(window_start),
            "reference_kind": ref.kind,
            "reference_start": iso(ref.start),
            "reference_end": iso(ref.end),
            "reference_id": fitted.ref_id,
            "embedder": ref.embedder,
            "n_reference": n_ref,
            "n_window": len(window),
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
        prompts = queries.prompts(
            self.store, window_start, as_of, sorted({i for ids in picks.values() for i in ids})
        )
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
            out.append(
                {
                    "cluster": cluster,
                    "label": "new_topic" if cluster < 0 else f"cluster_{cluster}",
                    "ref_share": round(ref_share, 4),
                    "cur_share": round(cur_share, 4),
                    "ratio": round(cur_share / max(ref_share, 1e-4), 2),
                    "psi": round(psi_term, 4),
                    "n_window": len(cur_members),
                    "examples": [
                        prompts.get(i, "")[:_EXAMPLE_CHARS] for i in picks.get(cluster, [])
                    ],
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
        """Event ids of each group's example prompts."""
        per_cluster = self.settings.examples_per_cluster
        cur_norm = normalize_rows(window.vectors)
        picks: dict[int, list[str]] = {}
        for cluster, _, cur_mask in groups:
            idx = np.flatnonzero(cur_mask)
            if idx.size and per_cluster:
                # Examples nearest the window's own centre of the group: they show what the
                # window brought into the cluster, not what the reference already had there.
                centre = cur_norm[idx].mean(0)
                closest = idx[np.argsort(-(cur_norm[idx] @ centre), kind="stable")[:per_cluster]]
                picks[cluster] = [window.ids[i] for i in closest]
        return picks

    def _judge(self, start: datetime, end: datetime, version: str) -> dict[str, dict[str, float]]:
        """Judge scores by event: {event_id: {dimension: value}} (mean over judge versions)."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for row in queries.judge_scores(self.store, start, end, version):
            if row["name"] not in _NOT_DIMENSIONS:
                out[row["event_id"]][row["name"]] = float(row["value"])
        return out


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
