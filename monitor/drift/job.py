"""The drift job: prompt embeddings of a reference against the current window, in event time.

Each firing (an event-time timer, ``drift.every_minutes``) looks at the window
``[as_of − window_minutes, as_of)`` of prompt embeddings and compares it with a reference:

- **pinned** (`vigil baseline pin`, stored in table ``state`` under ``drift.baseline`` or
  ``drift.baseline:<model_version>``), or else
- **rolling**: the ``reference_minutes`` just before the window.

One report covers all traffic (``model_version = ''``); one more per version is written
when the window mixes versions (a canary) or when that version has a baseline of its own.
The statistics (MMD on random Fourier features with a permutation null, centroid cosine,
k-means topic shares with PSI/chi-square, new-topic rate) and the correction for repeated
testing (alpha spent evenly over a day of event time, split over the three tests, plus a
minimum effect per test) live in `monitor.drift.stats`; read its docstring for the maths.

Determinism: rows are read in a fixed order, subsamples are taken by a keyed hash of the
event id, and every random draw is seeded from stable inputs: the reference's identity
(its span, filter, embedder and a digest of its event ids) for everything fitted on the
reference, plus ``as_of`` and the scope for the permutations. The same events therefore
give the same reports in `vigil replay` and in the live worker, cache or no cache.

Cost: what depends on the reference alone (bandwidth, Fourier features, k-means, the
new-topic threshold) is cached by the reference's identity, so a pinned baseline is
fitted once, not every few minutes; a rolling reference moves with the window and is
refitted (about 0.3 s for 5,000 × 384).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from monitor.config import DriftSettings, Settings
from monitor.drift.baseline import Baseline, read_baselines
from monitor.drift.stats import (
    Comparison,
    ReferenceModel,
    StatParams,
    alpha_per_test,
    blas_threads,
    build_reference,
    compare,
    normalize_rows,
    seed_from,
)
from monitor.errors import StoreError
from monitor.store.base import Store
from monitor.times import iso

log = logging.getLogger("vigil.drift")

#: Judge score names that are not a rubric dimension on a comparable scale.
_NOT_DIMENSIONS = frozenset({"pairwise"})
_EXAMPLE_CHARS = 200


def params_from(settings: DriftSettings) -> StatParams:
    """The statistics' parameters, with the per-test level after alpha spending."""
    return StatParams(
        permutations=settings.permutations,
        clusters=settings.clusters,
        rff_features=settings.rff_features,
        new_topic_quantile=settings.new_topic_quantile,
        alpha_test=alpha_per_test(settings.alpha, settings.every_minutes),
        min_mmd=settings.min_mmd,
        min_psi=settings.min_psi,
        min_new_topic=settings.min_new_topic,
    )


@dataclass(frozen=True)
class _Reference:
    kind: str
    start: datetime
    end: datetime
    version_filter: str
    embedder: str


@dataclass(frozen=True)
class _Fitted:
    model: ReferenceModel
    event_ids: list[str]


class DriftJob:
    """Loads embeddings, runs the tests, writes ``drift_reports``; one instance per pipeline."""

    def __init__(self, settings: DriftSettings, store: Store, cache_size: int = 4) -> None:
        self.settings = settings
        self.store = store
        self.params = params_from(settings)
        self._cache: OrderedDict[str, _Fitted] = OrderedDict()
        self._cache_size = cache_size
        self.fits = 0
        """How many references were fitted (the rest came from the cache)."""

    @property
    def _emb(self) -> str:
        return f"{self.store.database}.embeddings"

    # -- entry points

    async def __call__(self, as_of: datetime) -> None:
        try:
            await asyncio.to_thread(self.run, as_of)
        except StoreError as exc:
            # A failed drift evaluation must not stop ingestion; the next firing retries.
            log.warning("drift job failed", extra={"as_of": iso(as_of), "error": str(exc)[:300]})

    def run(self, as_of: datetime) -> list[dict[str, Any]]:
        """Evaluate every scope at ``as_of``, store the reports and return them (rows)."""
        with blas_threads(self.settings.blas_threads):
            return self._run(as_of)

    def _run(self, as_of: datetime) -> list[dict[str, Any]]:
        started = time.perf_counter()
        s = self.settings
        window_start = as_of - timedelta(minutes=s.window_minutes)
        embedder = self._window_embedder(window_start, as_of)
        if embedder is None:
            return []
        cur_ids, cur_versions, cur_vectors = self._load(
            window_start, as_of, "", embedder, s.max_window, salt=iso(as_of)
        )
        baselines = read_baselines(self.store)
        counts: dict[str, int] = defaultdict(int)
        for version in cur_versions:
            counts[version] += 1
        eligible = sorted(v for v, n in counts.items() if n >= s.min_window_events)
        scopes = [""] + [v for v in eligible if len(eligible) >= 2 or v in baselines]
        reports: list[dict[str, Any]] = []
        for scope in scopes:
            mask = (
                np.ones(len(cur_ids), dtype=bool)
                if not scope
                else np.array([v == scope for v in cur_versions], dtype=bool)
            )
            if int(mask.sum()) < s.min_window_events:
                log.debug(
                    "drift window too small", extra={"model_version": scope, "n": int(mask.sum())}
                )
                continue
            ref = self._reference_for(scope, baselines, window_start, embedder)
            report = self._evaluate(
                as_of,
                window_start,
                scope,
                ref,
                [i for i, keep in zip(cur_ids, mask, strict=True) if keep],
                cur_vectors[mask],
            )
            if report is not None:
                reports.append(report)
        if reports:
            self.store.insert("drift_reports", reports)
        log.info(
            "drift job ran",
            extra={
                "as_of": iso(as_of),
                "reports": len(reports),
                "drifted": [r["model_version"] for r in reports if r["drifted"]],
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return reports

    # -- loading

    def _window_embedder(self, start: datetime, end: datetime) -> str | None:
        # Vectors of different embedders are not comparable: use the window's main one.
        rows = self.store.query(
            f"SELECT embedder, count() AS n FROM {self._emb} WHERE kind = 'prompt' "
            "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
            "GROUP BY embedder ORDER BY n DESC, embedder LIMIT 1",
            {"start": start, "end": end},
        )
        if not rows or int(rows[0]["n"]) < self.settings.min_window_events:
            return None
        return str(rows[0]["embedder"])

    def _load(
        self, start: datetime, end: datetime, version: str, embedder: str, limit: int, salt: str
    ) -> tuple[list[str], list[str], np.ndarray[Any, np.dtype[np.float32]]]:
        # A keyed hash picks the subsample: stable for the same rows, spread over the span.
        rows = self.store.query(
            f"SELECT event_id, model_version, vector FROM {self._emb} FINAL "
            "WHERE kind = 'prompt' AND embedder = {e:String} "
            "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
            "AND ({v:String} = '' OR model_version = {v:String}) "
            "ORDER BY sipHash64(event_id, {salt:String}) LIMIT {limit:UInt32}",
            {"start": start, "end": end, "v": version, "e": embedder, "salt": salt, "limit": limit},
        )
        rows.sort(key=lambda r: r["event_id"])
        if not rows:
            return [], [], np.zeros((0, 0), dtype=np.float32)
        vectors = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        return [r["event_id"] for r in rows], [r["model_version"] for r in rows], vectors

    def _reference_for(
        self, scope: str, baselines: dict[str, Baseline], window_start: datetime, embedder: str
    ) -> _Reference:
        pinned = baselines.get(scope) or baselines.get("")
        if pinned is not None:
            return _Reference("pinned", pinned.start, pinned.end, pinned.model_version, embedder)
        start = window_start - timedelta(minutes=self.settings.reference_minutes)
        return _Reference("rolling", start, window_start, "", embedder)

    def _fitted(self, ref: _Reference) -> tuple[str, _Fitted] | None:
        fp = self.store.query(
            "SELECT count() AS n, toString(groupBitXor(sipHash64(event_id))) AS h "
            f"FROM {self._emb} FINAL "
            "WHERE kind = 'prompt' AND embedder = {e:String} "
            "AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
            "AND ({v:String} = '' OR model_version = {v:String})",
            {"start": ref.start, "end": ref.end, "v": ref.version_filter, "e": ref.embedder},
        )
        n = int(fp[0]["n"]) if fp else 0
        if n < self.settings.min_window_events:
            return None
        ref_id = "{:016x}".format(
            seed_from(
                ref.kind,
                iso(ref.start),
                iso(ref.end),
                ref.version_filter,
                ref.embedder,
                n,
                fp[0]["h"],
                self.params,
            )
        )
        hit = self._cache.get(ref_id)
        if hit is not None:
            self._cache.move_to_end(ref_id)
            return ref_id, hit
        ids, _, vectors = self._load(
            ref.start,
            ref.end,
            ref.version_filter,
            ref.embedder,
            self.settings.max_reference,
            salt=ref_id,
        )
        fitted = _Fitted(build_reference(vectors, self.params, seed_from("reference", ref_id)), ids)
        self.fits += 1
        self._cache[ref_id] = fitted
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ref_id, fitted

    # -- one scope

    def _evaluate(
        self,
        as_of: datetime,
        window_start: datetime,
        scope: str,
        ref: _Reference,
        cur_ids: list[str],
        cur_vectors: np.ndarray[Any, np.dtype[np.float32]],
    ) -> dict[str, Any] | None:
        got = self._fitted(ref)
        if got is None:
            log.info(
                "drift reference too small",
                extra={"model_version": scope, "reference": ref.kind, "as_of": iso(as_of)},
            )
            return None
        ref_id, fitted = got
        result = compare(
            fitted.model, cur_vectors, self.params, seed_from(ref_id, iso(as_of), scope)
        )
        clusters = self._describe(
            ref, window_start, as_of, scope, fitted, cur_ids, cur_vectors, result
        )
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
            "reference_id": ref_id,
            "embedder": ref.embedder,
            "n_reference": n_ref,
            "n_window": len(cur_ids),
            "drifted": int(result.drifted),
            "new_topic": int("new_topic" in result.reasons),
            "reasons": list(result.reasons),
            "alpha_test": self.params.alpha_test,
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

    def _describe(
        self,
        ref: _Reference,
        window_start: datetime,
        as_of: datetime,
        scope: str,
        fitted: _Fitted,
        cur_ids: list[str],
        cur_vectors: np.ndarray[Any, np.dtype[np.float32]],
        result: Comparison,
    ) -> list[dict[str, Any]]:
        """The most shifted clusters (plus the new-topic group): shares, examples, judge change."""
        s = self.settings
        shares = result.shares
        ref_labels = fitted.model.topics.ref_labels
        # Clusters that grew come first (that is where a new topic or a surge shows), then
        # those that shrank; each by its PSI contribution.
        grew = shares.cur_share > shares.ref_share
        order = np.lexsort((-shares.psi_terms, ~grew))[: s.top_clusters]
        groups: list[
            tuple[int, np.ndarray[Any, np.dtype[np.bool_]], np.ndarray[Any, np.dtype[np.bool_]]]
        ] = [(int(c), ref_labels == c, result.cur_labels == c) for c in order]
        if result.far.any() and result.new_topic_rate > result.new_topic_base:
            groups.append((-1, np.zeros(len(ref_labels), dtype=bool), result.far))
        ref_judge = self._judge(ref.start, ref.end, ref.version_filter)
        cur_judge = self._judge(window_start, as_of, scope)
        cur_norm = normalize_rows(cur_vectors)
        picks: dict[int, list[str]] = {}
        for cluster, _, cur_mask in groups:
            idx = np.flatnonzero(cur_mask)
            if idx.size and s.examples_per_cluster:
                # Examples nearest the window's own centre of the group: they show what the
                # window brought into the cluster, not what the reference already had there.
                centre = cur_norm[idx].mean(0)
                closest = idx[
                    np.argsort(-(cur_norm[idx] @ centre), kind="stable")[: s.examples_per_cluster]
                ]
                picks[cluster] = [cur_ids[i] for i in closest]
        prompts = self._prompts(
            window_start, as_of, sorted({i for ids in picks.values() for i in ids})
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
            cur_members = [cur_ids[i] for i in np.flatnonzero(cur_mask)]
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
                    "judge": _judge_change(ref_judge, ref_members, cur_judge, cur_members),
                }
            )
        return out

    def _judge(self, start: datetime, end: datetime, version: str) -> dict[str, dict[str, float]]:
        """Judge scores by event: {event_id: {dimension: value}} (mean over judge versions)."""
        rows = self.store.query(
            f"SELECT event_id, name, avg(value) AS value FROM {self.store.database}.scores FINAL "
            "WHERE scorer = 'judge' AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
            "AND ({v:String} = '' OR model_version = {v:String}) GROUP BY event_id, name",
            {"start": start, "end": end, "v": version},
        )
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for row in rows:
            if row["name"] not in _NOT_DIMENSIONS:
                out[row["event_id"]][row["name"]] = float(row["value"])
        return out

    def _prompts(self, start: datetime, end: datetime, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = self.store.query(
            f"SELECT event_id, any(prompt) AS prompt FROM {self.store.database}.events "
            "WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} "
            "AND has({ids:Array(String)}, event_id) GROUP BY event_id",
            {"start": start, "end": end, "ids": ids},
        )
        return {r["event_id"]: str(r["prompt"]) for r in rows}


def _judge_change(
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


def build_drift_timer(
    settings: Settings, store: Store
) -> tuple[float, Callable[[datetime], Awaitable[None]]] | None:
    """The drift job as an event-time timer (for ``monitor.assembly.TIMERS``)."""
    if not settings.drift.enabled:
        return None
    return settings.drift.every_minutes * 60.0, DriftJob(settings.drift, store)
