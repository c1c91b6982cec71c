"""`vigil evalset run`: a candidate model against a baseline on one eval-set version.

Two phases. `prepare` does everything that needs no network and can be wrong: the
thresholds file (first of all), the endpoints' syntax, the eval set, the rubric, the
benchmark files; any problem is a `VigilError` before a single call. `execute` gets the
answers (cached), the verdicts and the test results, measures, decides, writes
``report.json``/``report.md`` and records the run in ``eval_runs``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from monitor.config import Settings
from monitor.errors import EvalsetError, VigilError
from monitor.evalset.gate import measure
from monitor.evalset.gate.answers import (
    CodeResult,
    Generation,
    ModelAnswers,
    NoProgress,
    Progress,
    Verdicts,
    answer_all,
    judge_all,
    test_all,
)
from monitor.evalset.gate.benchmarks import TaskComparison, compare, load_results
from monitor.evalset.gate.cache import ResponseCache
from monitor.evalset.gate.endpoints import Caller, CallStats, Endpoint, parse_endpoint
from monitor.evalset.gate.gating import evaluate, failed
from monitor.evalset.gate.judging import GateJudge
from monitor.evalset.gate.metrics import SemanticSimilarity
from monitor.evalset.gate.report import write_report
from monitor.evalset.gate.safety import SafetyScanner
from monitor.evalset.gate.thresholds import Thresholds, check_against_rubric, load_thresholds
from monitor.evalset.items import EvalItem, content_hash
from monitor.evalset.versions import EvalSet, load
from monitor.scorers.judge.rubric import Rubric, load_rubric
from monitor.store.base import Store
from monitor.store.queries.eval_runs import record_run
from monitor.times import now_utc

log = logging.getLogger("vigil.evalset.gate")

_KS = (1, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class GateRequest:
    """What `vigil evalset run` was asked (flags, not yet checked)."""

    evalset: str
    candidate: str
    baseline: str
    thresholds: Path
    judge: str | None = None
    rubric: str | None = None
    benchmarks: tuple[Path, Path] | None = None
    split: str = "test"
    out: Path | None = None
    limit: int | None = None
    max_tokens: int | None = None


@dataclass
class Plan:
    request: GateRequest
    settings: Settings
    thresholds: Thresholds
    evalset: EvalSet
    items: list[EvalItem]
    endpoints: list[Endpoint]
    """Candidate, baseline, then the judge when there is one."""
    rubric: Rubric | None
    benchmarks: list[TaskComparison] = field(default_factory=list)


def prepare(request: GateRequest, settings: Settings) -> Plan:
    """Everything checkable offline, the thresholds file first; raises `VigilError`."""
    thresholds = load_thresholds(request.thresholds)
    endpoints = [parse_endpoint("candidate", request.candidate),
                 parse_endpoint("baseline", request.baseline)]
    if request.judge:
        endpoints.append(parse_endpoint("judge", request.judge))
    evalset = load(settings.evalset_dir, request.evalset)
    items = [i for i in evalset.items if request.split in ("all", i.split)]
    if request.limit is not None:
        items = items[: request.limit]
    if not items:
        raise EvalsetError(f"{evalset.name}@{evalset.version} has no items in split "
                           f"{request.split!r}")
    rubric = load_rubric(request.rubric or settings.judge.rubric) if request.judge else None
    check_against_rubric(thresholds, rubric.names if rubric else None,
                         settings.evalset.gate.samples, str(request.thresholds))
    benchmarks = []
    if request.benchmarks:
        base, cand = (load_results(p) for p in request.benchmarks)
        benchmarks = compare(base, cand, thresholds.benchmarks)
    return Plan(request, settings, thresholds, evalset, items, endpoints, rubric, benchmarks)


@dataclass
class Collected:
    models: list[ModelAnswers]
    verdicts: Verdicts | None
    code: list[list[CodeResult]]
    stats: CallStats
    judge_counts: dict[str, int] = field(default_factory=lambda: {"repairs": 0, "unparsed": 0})


async def _collect(plan: Plan, progress: Progress) -> Collected:
    gate = plan.settings.evalset.gate
    cache = ResponseCache(plan.settings.gate_cache_dir)
    caller = Caller(gate, cache)
    try:
        plan.endpoints = [await caller.resolve(e) for e in plan.endpoints]
        generation = Generation(plan.request.max_tokens or gate.max_tokens, gate.samples,
                                gate.sample_temperature)
        models = await answer_all(caller, plan.endpoints[:2], plan.items, generation, progress)
        verdicts, judge = None, None
        if plan.rubric is not None:
            judge_endpoint = plan.endpoints[2]
            mode = gate.judge_structured_output
            if mode == "auto":
                mode = "json_object_schema" if judge_endpoint.loopback else "json_schema"
            judge = GateJudge(caller, judge_endpoint, plan.rubric, mode, gate.judge_max_tokens,
                              gate.judge_max_chars)
            verdicts = await judge_all(judge, plan.items, models, progress)
        code = await test_all(models, plan.items, gate.test_timeout_s, progress)
        got = Collected(models, verdicts, code, caller.stats)
        if judge is not None:
            got.judge_counts = {"repairs": judge.repairs, "unparsed": judge.unparsed}
        return got
    finally:
        await caller.aclose()
        cache.close()


def _semantic(plan: Plan, models: list[ModelAnswers], notes: list[str]) -> list[list[float]] | None:
    refs = [i for i, item in enumerate(plan.items) if item.reference]
    if not refs:
        return None
    if not plan.settings.evalset.gate.semantic_similarity:
        notes.append("semantic similarity off (evalset.gate.semantic_similarity: false)")
        return None
    emb = plan.settings.embedding
    try:
        sims = SemanticSimilarity(emb.model_path, emb.device).similarities(
            [m.texts[i] for m in models for i in refs],
            [plan.items[i].reference for _ in models for i in refs],
        )
    except VigilError as exc:
        notes.append(f"semantic similarity not measured: {exc}")
        return None
    return [sims[: len(refs)], sims[len(refs):]]


def _metrics(plan: Plan, got: Collected, notes: list[str]) -> list[measure.Metric]:
    gate = plan.settings.evalset.gate
    iv = measure.Intervals(gate.confidence, gate.bootstrap_samples)
    out = measure.reference_metrics(plan.items, got.models, _semantic(plan, got.models, notes), iv)
    # The usual ks, the sample count itself, and any k the thresholds name (<= samples).
    named = {int(n[5:]) for n in plan.thresholds.metrics if n.startswith("pass@")}
    ks = sorted({k for k in _KS if k <= gate.samples} | {gate.samples} | named)
    out += measure.passk_metrics(got.code, ks, iv)
    if got.verdicts is not None and plan.rubric is not None:
        out += measure.judge_metrics(plan.rubric.names, got.verdicts, iv)
    scanner = SafetyScanner(plan.settings)
    flags = [scanner.scan(plan.items, m.texts) for m in got.models]
    notes.extend(scanner.notes)
    out += measure.safety_metrics(flags, iv, f"toxicity backend {scanner.toxicity_label}")
    out += measure.latency_metrics(got.models, iv)
    return out


def config_hash(plan: Plan) -> str:
    """What decides a run's numbers; equal hashes mean comparable runs."""
    gate = plan.settings.evalset.gate
    document = {
        "evalset": plan.evalset.name, "version": plan.evalset.version,
        "items": content_hash(plan.items), "split": plan.request.split,
        "endpoints": [e.label for e in plan.endpoints],
        "rubric": plan.rubric.label if plan.rubric else "",
        "thresholds": plan.thresholds.model_dump(mode="json"),
        "max_tokens": plan.request.max_tokens or gate.max_tokens, "samples": gate.samples,
        "sample_temperature": gate.sample_temperature, "judge_max_tokens": gate.judge_max_tokens,
        "judge_max_chars": gate.judge_max_chars, "toxicity": plan.settings.toxicity.backend,
        "benchmarks": [b.as_dict() for b in plan.benchmarks],
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass
class GateResult:
    report: dict[str, Any]
    report_path: Path

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def _store_row(report: dict[str, Any], path: Path) -> dict[str, Any]:
    values: dict[str, float] = {}
    for m in report["metrics"]:
        for prefix, key in (("", "candidate"), ("baseline:", "baseline"), ("delta:", "delta")):
            est = m[key]
            if est is not None and math.isfinite(est["value"]):
                values[prefix + m["name"]] = float(est["value"])
    for b in report["benchmarks"]:
        if b["drop_points"] is not None:
            values[f"benchmark_drop:{b['task']}"] = float(b["drop_points"])
    return {
        "run_id": report["run_id"], "started_at": report["started_at"],
        "finished_at": report["finished_at"], "evalset": report["evalset"]["name"],
        "version": report["evalset"]["version"], "candidate": report["candidate"],
        "baseline": report["baseline"], "judge": report["judge"]["endpoint"],
        "rubric_version": report["judge"]["rubric"], "config_hash": report["config_hash"],
        "metrics": values, "passed": int(report["passed"]),
        "failed_checks": report["failed_checks"], "report_path": str(path),
    }


def _report(plan: Plan, got: Collected, metrics: list[measure.Metric], run_id: str,
            started: datetime, notes: list[str]) -> dict[str, Any]:
    checks = evaluate(plan.thresholds, metrics, plan.benchmarks)
    judge = plan.endpoints[2].label if plan.rubric else ""
    if got.verdicts is not None:
        counts = got.verdicts.pairs
        notes.append(f"pairwise flips by position: {counts.first_position} chose A both times, "
                     f"{counts.second_position} chose B both times")
    return {
        "run_id": run_id, "started_at": started.isoformat(), "finished_at": now_utc().isoformat(),
        "evalset": {"name": plan.evalset.name, "version": plan.evalset.version,
                    "path": str(plan.evalset.path), "items": len(plan.items),
                    "split": plan.request.split, "limit": plan.request.limit,
                    "content_hash": content_hash(plan.items)},
        "candidate": plan.endpoints[0].label, "baseline": plan.endpoints[1].label,
        "judge": {"endpoint": judge, "rubric": plan.rubric.label if plan.rubric else "",
                  "note": "" if plan.rubric else "no --judge: judge and pairwise metrics skipped",
                  **got.judge_counts},
        "thresholds": {"path": str(plan.request.thresholds),
                       **plan.thresholds.model_dump(mode="json")},
        "config_hash": config_hash(plan),
        "intervals": {"confidence": plan.settings.evalset.gate.confidence},
        "calls": {"made": got.stats.calls, "cached": got.stats.cached,
                  "retries": got.stats.retries, "by_role": got.stats.by_role},
        "metrics": [m.as_dict() for m in metrics],
        "benchmarks": [b.as_dict() for b in plan.benchmarks],
        "checks": [c.as_dict() for c in checks],
        "failed_checks": failed(checks), "passed": not failed(checks), "notes": notes,
    }


def execute(plan: Plan, store: Store | None = None,
            progress: Progress | None = None) -> GateResult:
    """Run a prepared gate; `EvalsetError` when an endpoint fails for good."""
    started = now_utc()
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    got = asyncio.run(_collect(plan, progress or NoProgress()))
    notes = [] if plan.rubric else ["no --judge: judge and pairwise metrics skipped"]
    metrics = _metrics(plan, got, notes)
    report = _report(plan, got, metrics, run_id, started, notes)
    folder = plan.request.out or plan.settings.evalset_dir / plan.evalset.name / "runs" / run_id
    path = write_report(folder, report)
    if store is not None:
        record_run(store, _store_row(report, path))
    log.info("gate run finished", extra={"run_id": run_id, "passed": report["passed"],
                                         "calls": got.stats.calls, "cached": got.stats.cached})
    return GateResult(report, path)


def run_gate(request: GateRequest, settings: Settings, store: Store | None = None,
             progress: Progress | None = None) -> GateResult:
    return execute(prepare(request, settings), store, progress)
