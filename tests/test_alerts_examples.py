"""`vigil alerts --examples ID`, the command every alert prints, for every rule.

One generated stream holds a known incident for each default rule (and for the one metric
the defaults do not use, ``judge_mean``), on its own segment and span. Through the real
CLI: `vigil replay` raises the alerts, then `vigil alerts --examples ID --json` runs each
fired alert's stored query; it must succeed and list events of that incident.

The model scorers are off (no model is needed): what they would have written, prompt
embeddings for the drift job and judge verdicts, is stored before the replay, as a
scorer would have stored it for these very events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.alerts.rules import load_rules
from monitor.drift.vectors import normalize_rows
from tests.fixtures.alert_streams import (
    config_file,
    minutes_in,
    open_data,
    replay,
    transitions,
    vigil,
    write_events,
)
from vigil.traffic import (
    BAD_VERSION,
    GOOD_VERSION,
    JSON_ROUTE,
    Incident,
    TrafficSpec,
    generate_events,
)

MINUTES = 200
CANARY = f"model_version={BAD_VERSION}"
SLOW_ROUTE = "support/billing"
#: Each incident's span in minutes of event time (the first 60 are the rules' baseline).
SPANS = {
    "regression": (100, 200),
    "pii": (110, 120),
    "topic_surge": (150, 200),
    "slow": (70, 110),
    "json": (120, 170),
    "judge_failures": (130, 170),
    "toxicity": (80, 110),
}
JUDGE_MEAN = {
    "name": "judge_helpfulness_down",
    "metric": "judge_mean",
    "split_by": ["model_version"],
    "min_sample": 20,
    "min_effect": 0.5,
    "params": {"dimension": "helpfulness"},
}
#: The drift job's window (its defaults); its reference is pinned to the first hour, the
#: known-good span, as an operator would (`vigil baseline pin`).
DRIFT = {"window_minutes": 30.0}
BASELINE_MINUTES = 60


class Stream:
    """The events, and which of them each incident touched."""

    def __init__(self) -> None:
        spec = TrafficSpec(n=MINUTES * 30, seed=21)
        at = spec.start
        self.start = at

        def span(kind: str) -> tuple[datetime, datetime]:
            lo, hi = SPANS[kind]
            return at + timedelta(minutes=lo), at + timedelta(minutes=hi)

        spec.incidents = [
            Incident("regression", *span("regression"), 0.3),
            Incident("pii", *span("pii"), 0.05),
            Incident("topic_surge", *span("topic_surge"), 0.4),
        ]
        self.touched: dict[str, set[str]] = {kind: set() for kind in SPANS}
        self.events = list(self._events(spec))

    def within(self, kind: str, event: dict[str, Any]) -> bool:
        lo, hi = SPANS[kind]
        return lo <= minutes_in(self.start, event) < hi

    def _events(self, spec: TrafficSpec) -> Iterator[dict[str, Any]]:
        rng = random.Random(spec.seed + 3)
        for e in generate_events(spec):
            eid = e["event_id"]
            if e["model_version"] == BAD_VERSION:
                self.touched["regression"].add(eid)
            if e["route"] == "support/other":
                self.touched["topic_surge"].add(eid)
            if self.within("pii", e):
                self.touched["pii"].add(eid)
            if e["route"] == SLOW_ROUTE and self.within("slow", e):
                e["response"]["latency_ms"] *= 3  # a slow dependency behind one route
                self.touched["slow"].add(eid)
            if e["route"] == JSON_ROUTE and self.within("json", e) and rng.random() < 0.5:
                e["response"]["content"] = e["response"]["content"][:-5]  # cut-off JSON
                self.touched["json"].add(eid)
            if self.within("judge_failures", e) and rng.random() < 0.3:
                self.touched["judge_failures"].add(eid)
            yield e

    def scorer_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Prompt embeddings around one centre per route (the surge's route far from all),
        a judge verdict per event: low for the canary's answers, failed on its span, and a
        toxicity score per event: low, but moderate (under the incident threshold) for 5%
        of the good checkpoint's answers on the toxicity span."""
        rng = np.random.default_rng(4)
        tox_rng = np.random.default_rng(5)
        routes = sorted({e["route"] for e in self.events})
        centres = normalize_rows(rng.standard_normal((len(routes), 32)))
        emb, decisions, scores = [], [], []
        for e in self.events:
            base = {k: e[k] for k in ("event_id", "ts", "route", "model", "model_version")}
            vector = centres[routes.index(e["route"])] + 0.25 * rng.standard_normal(32)
            emb.append(
                {
                    **base,
                    "kind": "prompt",
                    "embedder": "test-emb",
                    "vector": [float(v) for v in vector],
                }
            )
            failed = e["event_id"] in self.touched["judge_failures"]
            decision = "failed" if failed else "scored"
            decisions.append(
                {**base, "scorer": "judge", "decision": decision, "rank": 2 if failed else 3,
                 "reason": "timeout" if failed else "rate:1", "decided_at": e["ts"]}
            )  # fmt: skip
            if not failed:
                bad = e["model_version"] == BAD_VERSION
                value = float(rng.choice([1, 2, 3] if bad else [3, 4, 5]))
                scores.append(
                    {**base, "scorer": "judge", "scorer_version": "j1", "name": "helpfulness",
                     "value": value, "label": ""}
                )  # fmt: skip
            toxic = (
                e["model_version"] == GOOD_VERSION
                and self.within("toxicity", e)
                and tox_rng.random() < 0.05
            )
            if toxic:
                self.touched["toxicity"].add(e["event_id"])
            value = float(tox_rng.uniform(0.25, 0.5) if toxic else tox_rng.beta(1, 40))
            scores.append({**base, "scorer": "toxicity", "scorer_version": "t1",
                           "name": "toxicity", "value": value, "label": ""})  # fmt: skip
            decisions.append({**base, "scorer": "toxicity", "decision": "scored", "rank": 3,
                              "reason": "rate:1", "decided_at": e["ts"]})  # fmt: skip
        return {"embeddings": emb, "decisions": decisions, "scores": scores}


#: (rule, segment) -> the incident whose events its examples must be.
EXPECTED = {
    ("helpfulness_drop", CANARY): "regression",
    ("negative_feedback_up", CANARY): "regression",
    ("judge_helpfulness_down", CANARY): "regression",
    ("safety_incidents_up", "risk_type=pii"): "pii",
    ("topic_drift", ""): "topic_surge",
    ("latency_p95_up", f"route={SLOW_ROUTE}"): "slow",
    ("json_format_down", f"route={JSON_ROUTE}"): "json",
    ("judge_failures_up", ""): "judge_failures",
    ("toxicity_score_up", f"model_version={GOOD_VERSION}"): "toxicity",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stream, Path, Path]:
    tmp = tmp_path_factory.mktemp("alert_examples")
    stream = Stream()
    config = config_file(tmp, extra_rules=[JUDGE_MEAN], drift=DRIFT)
    store = open_data(tmp)
    try:
        store.migrate()
        for table, rows in stream.scorer_rows().items():
            store.insert(table, rows)
    finally:
        store.close()
    end = stream.start + timedelta(minutes=BASELINE_MINUTES)
    pinned = vigil(
        config, "baseline", "pin", "--from", stream.start.isoformat(), "--to", end.isoformat()
    )
    assert pinned.returncode == 0, pinned.stderr[-2000:]
    replay(config, write_events(tmp / "traffic.jsonl", stream.events))
    return stream, tmp, config


def test_every_rule_fires_on_its_incident_only(run: tuple[Stream, Path, Path]) -> None:
    _, tmp, _ = run
    fired = {(r["rule"], r["segment_key"]) for r in transitions(tmp) if r["state"] == "firing"}
    assert fired == set(EXPECTED)
    assert {rule for rule, _ in EXPECTED} == {r.name for r in load_rules()} | {JUDGE_MEAN["name"]}


def test_examples_of_every_fired_alert_are_the_incidents_events(
    run: tuple[Stream, Path, Path],
) -> None:
    stream, tmp, config = run
    fired = {r["alert_id"]: r for r in transitions(tmp) if r["state"] == "firing"}
    assert fired
    for alert_id, alert in fired.items():
        done = vigil(config, "alerts", "--examples", alert_id, "--json")
        assert done.returncode == 0, (alert["rule"], done.stderr[-2000:])
        rows = orjson.loads(done.stdout)["examples"]
        kind = EXPECTED[(alert["rule"], alert["segment_key"])]
        assert rows, alert["rule"]
        if kind == "topic_surge":
            # The drift rule's examples are its flagged reports; their example prompts
            # must be the surge's.
            surge = {e["request"]["messages"][-1]["content"] for e in stream.events
                     if e["event_id"] in stream.touched[kind]}  # fmt: skip
            clusters = [
                c
                for r in rows
                for c in (orjson.loads(r["top_clusters"]) if isinstance(r["top_clusters"], str)
                          else r["top_clusters"])
            ]  # fmt: skip
            shown = {p for c in clusters for p in c["examples"] if p}
            assert any(s in p or p in s for p in shown for s in surge), shown
            continue
        ids = {r["event_id"] for r in rows}
        segment = dict(p.split("=", 1) for p in alert["segment_key"].split(",") if p)
        segment.pop("risk_type", None)
        assert all(all(r[d] == v for d, v in segment.items()) for r in rows), alert["rule"]
        ours = ids & stream.touched[kind]
        if kind in ("slow", "json", "toxicity"):
            # Some of the route's requests are slow (or broken, or score high) on a good
            # day too: the incident's must be most of them.
            assert len(ours) > len(ids) / 2, (alert["rule"], len(ours), len(ids))
        else:
            assert ids <= stream.touched[kind], (alert["rule"], ids - stream.touched[kind])
