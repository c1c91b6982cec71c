"""Detection benchmark: how fast the default alert rules catch real incidents, and how often
they cry wolf on clean traffic. Prints figures; not a test.

Streams are built from ../shared/data (AlpacaEval instructions with real outputs of
claude-2 and falcon-7b-instruct, RealToxicityPrompts prefixes), one event every 2 s, and
run through `monitor.replay.replay_file` (the `vigil replay` machinery) in event time:

- clean: claude-2 answering instructions resampled with replacement; one source set
  (vicuna) is held out of the clean traffic so that it can arrive later as a new topic;
- (a) canary: from onset, 30% of traffic is served by version ckpt-canary, answered with
  falcon-7b-instruct's real outputs;
- (b) toxicity: from onset, 2% of responses are replaced by toxic text (RTP prefixes),
  watched by the incident count (safety_incidents_up) and the score distribution against
  the baseline (toxicity_score_up);
- (c) topic surge: from onset, 40% of prompts come from the held-out vicuna set.

The labelled signal: user feedback on 30% of events, derived from AlpacaEval's
``gpt4_preference`` for that output (2: the output won against text-davinci-003 -> +1,
1: it lost -> -1, 0: a draw -> 0). The local SmolLM2 judge cannot judge (see ANCHORS), so
the judge is off here; the helpfulness rule runs on feedback plus cheap checks. Toxicity
uses the offline profanity-check scorer; (c) uses MiniLM embeddings and the drift job.

Per incident and rule it prints the delay from onset to firing (events and event-time
minutes), the number of firing notifications (transitions into firing) and whether the
alert named the incident's segment.

The in-run baseline is the ANCHORS peer method: a two-proportion z-test (p < 0.01) on
30-minute windows (900 events) against the stream's clean prefix; the ratio printed is
Vigil's delay over the baseline's.

Usage: .venv/bin/python bench/detection.py [--clean 20000] [--prefix 5400] [--incident 3600]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.alerts.evaluator import AlertEvaluator  # noqa: E402
from monitor.config import Settings, load_settings  # noqa: E402
from monitor.replay import replay_file  # noqa: E402
from monitor.store import open_store  # noqa: E402
from monitor.times import parse_optional_ts  # noqa: E402

DATA = Path(os.environ.get("VIGIL_BENCH_DATA", ROOT.parent / "shared" / "data"))
START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
STEP_S = 2.0
HELD_OUT = "vicuna"
FEEDBACK_SHARE = 0.3
RATING = {2: 1, 1: -1, 0: 0}

EVAL_COST: list[float] = []


def _timed_evaluate() -> None:
    # Measure the evaluator's cost per evaluation without touching its code.
    original = AlertEvaluator.evaluate

    def timed(self: AlertEvaluator, as_of: datetime) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        try:
            return original(self, as_of)
        finally:
            EVAL_COST.append(time.perf_counter() - t0)

    AlertEvaluator.evaluate = timed  # type: ignore[method-assign]


def _load(name: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(line) for line in (DATA / "traffic" / name).read_bytes().splitlines() if line
    ]


@dataclass
class Scenario:
    name: str
    kind: str  # clean, canary, toxic, surge
    n_clean: int
    n_incident: int
    onset_index: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def onset(self) -> datetime:
        return START + timedelta(seconds=self.n_clean * STEP_S)


def build(
    s: Scenario,
    claude: list[dict[str, Any]],
    falcon: list[dict[str, Any]],
    toxic: list[str],
    seed: int,
) -> None:
    rng = random.Random(seed)
    clean_ids = [i for i, row in enumerate(claude) if row["dataset"] != HELD_OUT]
    held_ids = [i for i, row in enumerate(claude) if row["dataset"] == HELD_OUT]
    for i in range(s.n_clean + s.n_incident):
        incident = i >= s.n_clean
        idx = rng.choice(clean_ids)
        version, source = "ckpt-stable", claude
        if incident and s.kind == "surge" and rng.random() < 0.4:
            idx = rng.choice(held_ids)
        if incident and s.kind == "canary" and rng.random() < 0.3:
            version, source = "ckpt-canary", falcon
        row = source[idx]
        answer = row["output"]
        is_toxic = incident and s.kind == "toxic" and rng.random() < 0.02
        if is_toxic:
            answer = rng.choice(toxic)
        event: dict[str, Any] = {
            "event_id": f"{s.name}-{i:07d}",
            "ts": (START + timedelta(seconds=i * STEP_S)).isoformat().replace("+00:00", "Z"),
            "app": "assistant",
            "route": "assistant/chat",
            "model": "acme-assistant",
            "model_version": version,
            "request": {"messages": [{"role": "user", "content": row["instruction"]}]},
            "response": {
                "content": answer,
                "finish_reason": "stop",
                "latency_ms": round(rng.lognormvariate(6.8, 0.3), 1),
                "prompt_tokens": 10 + len(row["instruction"]) // 4,
                "completion_tokens": max(1, len(answer) // 4),
            },
            "metadata": {"dataset": row["dataset"], "truth_label": str(row.get("gpt4_preference"))},
        }
        if is_toxic:
            event["toxic"] = True  # dropped before the replay; the bench's own bookkeeping
        if rng.random() < FEEDBACK_SHARE:
            event["feedback"] = {"rating": RATING.get(int(row.get("gpt4_preference") or 0), 0)}
        s.events.append(event)


def settings_for(data_dir: Path, embeddings: bool) -> Settings:
    return load_settings(
        overrides={
            "store": {"data_dir": str(data_dir)},
            "judge": {"enabled": False},
            "toxicity": {"enabled": True},
            "embedding": {"enabled": embeddings},
            "alerts": {"notify_stdout": False},
        }
    )


def run(s: Scenario, workdir: Path, embeddings: bool) -> tuple[Settings, float]:
    path = workdir / f"{s.name}.jsonl"
    with path.open("wb") as handle:
        for event in s.events:
            wire = {k: v for k, v in event.items() if k != "toxic"}
            handle.write(orjson.dumps(wire) + b"\n")
    settings = settings_for(workdir / f"data-{s.name}", embeddings)
    t0 = time.perf_counter()
    asyncio.run(replay_file(settings, path))
    return settings, time.perf_counter() - t0


def fired(settings: Settings) -> list[dict[str, Any]]:
    store = open_store(settings)
    try:
        return store.query(
            f"SELECT rule, segment_key, previous, ts, onset, statistic, threshold, confidence, "
            "message "
            f"FROM {store.database}.alerts FINAL WHERE state = 'firing' ORDER BY ts"
        )
    finally:
        store.close()


def toxicity_flags(settings: Settings) -> set[str]:
    store = open_store(settings)
    try:
        rows = store.query(
            f"SELECT DISTINCT event_id FROM {store.database}.incidents WHERE risk_type = 'toxicity'"
        )
        return {str(r["event_id"]) for r in rows}
    finally:
        store.close()


def z_test_delay(
    flags: list[tuple[int, bool]], ref_end: int, onset: int, window: int = 900
) -> int | None:
    """ANCHORS baseline: first 900-event window after the reference with a share above the
    reference's at p < 0.01 (one-sided two-proportion z); returns events after onset to its end."""
    ref = [f for i, f in flags if i < ref_end]
    if not ref:
        return None
    p_ref = sum(ref) / len(ref)
    last = max(i for i, _ in flags)
    for lo in range(ref_end, last + 1, window):
        win = [f for i, f in flags if lo <= i < lo + window]
        if not win:
            continue
        p_win = sum(win) / len(win)
        pooled = (sum(ref) + sum(win)) / (len(ref) + len(win))
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / len(ref) + 1 / len(win)))
        if (p_win - p_ref) / se > 2.326:
            return lo + window - onset
    return None


def _report(
    s: Scenario, settings: Settings, wall: float, targets: list[tuple[str, str | None]]
) -> dict[str, Any]:
    alerts = fired(settings)
    onset = s.onset
    false = [a for a in alerts if (parse_optional_ts(a["ts"]) or onset) < onset]
    after = [a for a in alerts if (parse_optional_ts(a["ts"]) or onset) >= onset]
    out: dict[str, Any] = {"false": false, "wall": wall, "alerts": alerts, "hits": {}}
    for rule, seg in targets:
        mine = [a for a in after if a["rule"] == rule]
        named = [a for a in mine if seg is None or a["segment_key"] == seg]
        hit = named[0] if named else (mine[0] if mine else None)
        if hit is None:
            out["hits"][(rule, seg)] = None
            continue
        at = parse_optional_ts(hit["ts"])
        assert at is not None
        window = [e for e in s.events[s.n_clean :] if parse_optional_ts(e["ts"]) < at]  # type: ignore[operator]
        out["hits"][(rule, seg)] = {
            "alert": hit,
            "events": int((at - onset).total_seconds() / STEP_S),
            "minutes": (at - onset).total_seconds() / 60,
            "named": bool(named),
            # Transitions into firing (a page each) of this rule and segment since onset.
            "notifications": sum(
                1
                for a in mine
                if a["segment_key"] == hit["segment_key"] and a["previous"] != "firing"
            ),
            "feedback_events": sum(1 for e in window if "feedback" in e),
            "canary_feedback": sum(
                1 for e in window if "feedback" in e and e["model_version"] == "ckpt-canary"
            ),
        }
    return out


def toxic_visibility(s: Scenario, settings: Settings) -> str:
    """How visible the injected toxic answers are to the classifier: their scores against
    the clean baseline's highest score (the toxicity_score_up limit)."""
    store = open_store(settings)
    try:
        db = store.database
        rows = store.query(
            f"SELECT event_id, value FROM {db}.scores FINAL WHERE scorer = 'toxicity' "
            "AND name = 'toxicity'"
        )
    finally:
        store.close()
    score = {str(r["event_id"]): float(r["value"]) for r in rows}
    base_end = START + timedelta(minutes=60)
    clean = [score[e["event_id"]] for e in s.events
             if e["event_id"] in score and parse_optional_ts(e["ts"]) < base_end]  # type: ignore[operator]  # fmt: skip
    toxic = [score[e["event_id"]] for e in s.events[s.n_clean :]
             if e["event_id"] in score and e.get("toxic")]  # fmt: skip
    if not clean or not toxic:
        return "no toxicity scores"
    limit = max(clean)
    return (
        f"{len(toxic)} toxic answers injected; {sum(v > limit for v in toxic)} score above the "
        f"baseline's highest ({limit:.3f}), {sum(v >= 0.5 for v in toxic)} at or above 0.5"
    )


def _print_hit(
    s: Scenario,
    settings: Settings,
    rule: str,
    seg: str | None,
    hit: dict[str, Any] | None,
    n_clean: int,
    n_inc: int,
) -> None:
    if hit is None:
        print(
            f"  {rule} [{seg or 'all'}]: NOT detected within {n_inc} events"
            + ("" if s.kind != "surge" else " (needs the drift job's reports)")
        )
        return
    alert = hit["alert"]
    named = "n/a" if seg is None else ("yes" if hit["named"] else f"no ({alert['segment_key']})")
    print(
        f"  {rule} [{seg or 'all'}] fired after {hit['events']} events = "
        f"{hit['minutes']:.1f} event-min (confidence {float(alert['confidence']):.4f}); "
        f"firing notifications: {hit['notifications']}; named its segment: {named}"
    )
    flags: list[tuple[int, bool]] = []
    if s.kind == "canary":
        print(
            f"    feedback-bearing events since onset: {hit['feedback_events']} "
            f"({hit['canary_feedback']} on the canary)"
        )
        flags = [
            (i, e["feedback"]["rating"] < 0) for i, e in enumerate(s.events) if "feedback" in e
        ]
    elif s.kind == "toxic" and rule == "safety_incidents_up":
        tox = toxicity_flags(settings)
        flags = [(i, e["event_id"] in tox) for i, e in enumerate(s.events)]
    if flags:
        base = z_test_delay(flags, n_clean, n_clean)
        if base is None:
            print("    baseline (30-min z-test, p<0.01): not detected")
        else:
            print(
                f"    baseline (30-min z-test, p<0.01): {base} events = "
                f"{base * STEP_S / 60:.1f} event-min; "
                f"ratio vigil/baseline = {hit['events'] / base:.2f}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=int, default=20_000, help="events in the clean-only run")
    ap.add_argument("--prefix", type=int, default=5_400, help="clean events before each incident")
    ap.add_argument("--incident", type=int, default=3_600, help="events after each onset")
    ap.add_argument("--only", choices=["clean", "canary", "toxic", "surge"], action="append")
    args = ap.parse_args()
    if not (DATA / "traffic" / "claude-2.jsonl").exists():
        print(
            f"bench/detection: dev data not found at {DATA} (../shared/data is absent); "
            "nothing measured. Set VIGIL_BENCH_DATA to its path."
        )
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _timed_evaluate()
    claude, falcon = _load("claude-2.jsonl"), _load("falcon-7b-instruct.jsonl")
    toxic = [
        line.strip()
        for f in sorted((DATA / "toxicity").glob("rtp_*.txt"))
        for line in f.read_text().splitlines()
        if line.strip()
    ]
    print(
        f"data: {DATA} ({len(claude)} instructions, {len(toxic)} toxic texts); "
        f"one event every {STEP_S:g} s"
    )
    print(
        "labelled signal: feedback on 30% of events from gpt4_preference "
        "(won -> +1, lost -> -1, draw -> 0); judge off (SmolLM2 cannot judge); "
        "toxicity: profanity-check"
    )
    wanted = set(args.only or ["clean", "canary", "toxic", "surge"])
    # (name, kind, clean events, incident events, embeddings, [(rule, its segment)]);
    # segment None: the incident has none to name (a drift of all traffic).
    plans: list[tuple[str, str, int, int, bool, list[tuple[str, str | None]]]] = [
        ("clean", "clean", args.clean, 0, True, []),
        ("canary", "canary", args.prefix, args.incident, False,
         [("helpfulness_drop", "model_version=ckpt-canary")]),
        ("toxic", "toxic", args.prefix, args.incident, False,
         [("toxicity_score_up", "model_version=ckpt-stable"),
          ("safety_incidents_up", "risk_type=toxicity")]),
        ("surge", "surge", args.prefix, args.incident, True, [("topic_drift", None)]),
    ]  # fmt: skip
    clean_events = 0
    false_total = 0
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        for seed, (name, kind, n_clean, n_inc, emb, targets) in enumerate(plans):
            if name not in wanted:
                continue
            s = Scenario(name, kind, n_clean, n_inc)
            build(s, claude, falcon, toxic, seed=100 + seed)
            EVAL_COST.clear()
            settings, wall = run(s, Path(tmp), emb)
            r = _report(s, settings, wall, targets)
            clean_events += n_clean
            false_total += len(r["false"])
            costs = sorted(EVAL_COST)
            cost = (
                (
                    f"{1000 * sum(costs) / len(costs):.0f} ms mean, "
                    f"{1000 * costs[int(0.95 * (len(costs) - 1))]:.0f} ms p95 "
                    f"over {len(costs)} evaluations"
                )
                if costs
                else "-"
            )
            print(
                f"\n[{name}] {n_clean} clean + {n_inc} incident events "
                f"({(n_clean + n_inc) * STEP_S / 3600:.1f} h event time), replay {wall:.0f} s; "
                f"evaluation {cost}"
            )
            print(
                f"  false alarms on the clean stretch: {len(r['false'])}"
                + "".join(f"\n    {a['ts']} {a['rule']} [{a['segment_key']}]" for a in r["false"])
            )
            if name == "toxic":
                print(f"    {toxic_visibility(s, settings)}")
            for rule, seg in targets:
                _print_hit(s, settings, rule, seg, r["hits"][(rule, seg)], n_clean, n_inc)
            wanted_keys = {(rule, seg or "") for rule, seg in targets}
            for a in r["alerts"]:
                at = parse_optional_ts(a["ts"]) or s.onset
                if (
                    at >= s.onset
                    and a["previous"] != "firing"
                    and (a["rule"], a["segment_key"]) not in wanted_keys
                ):
                    after = int((at - s.onset).total_seconds() / STEP_S)
                    print(f"    also fired: {a['rule']} [{a['segment_key']}] after {after} events")
    print(
        f"\nfalse alarms: {false_total} over {clean_events} clean events "
        f"({clean_events * STEP_S / 3600:.1f} h of event time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
