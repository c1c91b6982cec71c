"""Benchmark: the toxicity stage vs its raw backend, same texts, same batch size, same run.

Three figures:
- raw backend: ``backend.predict`` over the texts in batches of ``toxicity.batch_size``;
- stage, no store: the real `Stage` (bounded queue, worker task, the model in a worker
  thread, score/incident/decision rows built) with a write function that drops the rows:
  the stage's own overhead;
- stage + chDB: the same, writing every row into an embedded chDB store, as in production.
Target: stage >= 0.9x raw texts/s.

Texts: model outputs from ../shared/data/traffic plus RealToxicityPrompts prefixes from
../shared/data/toxicity when present (so some rows are incidents); otherwise generated
support-bot traffic with a toxicity incident (monitor/traffic.py), and the output says so.

    .venv/bin/python bench/toxicity.py [--backend profanity-check|detoxify]
        [--checkpoint PATH --hf-config DIR] [--repeats 7] [--batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from monitor.config import ToxicitySettings
from monitor.events import Event, parse_event
from monitor.pipeline.stages import Stage
from monitor.scorers.base import Job
from monitor.scorers.toxicity.scorer import build_toxicity_scorer
from monitor.store.embedded import EmbeddedStore
from vigil.traffic import Incident, TrafficSpec, generate_events

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def load_events(limit: int) -> tuple[list[Event], str]:
    outputs = sorted((SHARED / "traffic").glob("*.jsonl")) if SHARED.is_dir() else []
    prefixes = sorted((SHARED / "toxicity").glob("*.txt")) if SHARED.is_dir() else []
    if not outputs:
        spec = TrafficSpec(n=limit, seed=1)
        spec.incidents = [Incident("toxicity", spec.start, spec.start + timedelta(days=1), 0.05)]
        events = [parse_event(orjson.dumps(e)) for e in generate_events(spec)]
        return events, f"generated traffic with a 5% toxicity incident (no {SHARED})"
    texts: list[str] = []
    for path in outputs:
        texts.extend(orjson.loads(line)["output"] for line in path.read_bytes().splitlines())
    for path in prefixes:
        texts.extend(line for line in path.read_text().splitlines() if line.strip())
    start = datetime(2026, 11, 22, 8, tzinfo=UTC)
    events = [
        parse_event(orjson.dumps({
            "event_id": f"tox-{i}", "ts": (start + timedelta(seconds=2 * i)).isoformat(),
            "model": "bench", "request": {"messages": [{"role": "user", "content": "hi"}]},
            "response": {"content": text},
        }))
        for i, text in enumerate(texts[:limit])
    ]
    names = ", ".join(p.name for p in outputs + prefixes)
    return events, f"{SHARED} ({names})"


async def run_stage(scorer: Any, events: list[Event], store: EmbeddedStore | None) -> float:
    async def write(tables: dict[str, list[dict[str, Any]]]) -> None:
        if store is None:
            return
        todo = {name: rows for name, rows in tables.items() if rows}

        def insert() -> None:
            for name, rows in todo.items():
                store.insert(name, rows)

        await asyncio.to_thread(insert)

    stage = Stage(scorer, write, queue_size=len(events) + 1)
    await stage.start()
    started = time.perf_counter()
    for event in events:
        stage.offer(Job(event, reason="rate"))
    await stage.drain()
    elapsed = time.perf_counter() - started
    await stage.stop()
    if stage.outcomes.get("scored") != len(events):
        print(f"  warning: outcomes {dict(stage.outcomes)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", default="profanity-check", choices=["profanity-check", "detoxify"]
    )
    parser.add_argument("--checkpoint", default="", help="Detoxify checkpoint (local file)")
    parser.add_argument("--hf-config", default="", help="Detoxify base config/tokenizer dir")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--limit", type=int, default=100_000)
    args = parser.parse_args()

    settings = ToxicitySettings(
        backend=args.backend, detoxify_checkpoint=args.checkpoint,
        detoxify_hf_config=args.hf_config, batch_size=args.batch,
    )
    scorer = build_toxicity_scorer(settings)
    events, source = load_events(args.limit)
    texts = [e.response.content for e in events]
    backend = scorer.backend
    backend.predict(texts[:64])  # warm-up
    print(f"data: {source}")
    # Other processes on the same cores skew both figures alike; the ratio is what counts.
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"backend {scorer.version}, texts {len(texts)}, batch {args.batch}, "
          f"cpus {os.cpu_count()}")

    raw_r, bare_r, chdb_r = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(tmp) / "data")
        store.migrate()
        try:
            for r in range(args.repeats):
                started = time.perf_counter()
                for i in range(0, len(texts), args.batch):
                    backend.predict(texts[i : i + args.batch])
                raw_r.append(len(texts) / (time.perf_counter() - started))
                bare_r.append(len(texts) / asyncio.run(run_stage(scorer, events, None)))
                chdb_r.append(len(texts) / asyncio.run(run_stage(scorer, events, store)))
                print(f"run {r + 1}: raw {raw_r[-1]:8.1f} texts/s | stage, no store "
                      f"{bare_r[-1]:8.1f} texts/s ({bare_r[-1] / raw_r[-1]:.2f}x) | stage + chDB "
                      f"{chdb_r[-1]:8.1f} texts/s ({chdb_r[-1] / raw_r[-1]:.2f}x)")
        finally:
            store.close()
    raw, bare, chdb = (statistics.median(x) for x in (raw_r, bare_r, chdb_r))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"median: raw {raw:.1f} texts/s, stage {bare:.1f} texts/s ({bare / raw:.2f}x), "
          f"stage + chDB writes {chdb:.1f} texts/s ({chdb / raw:.2f}x) (target >= 0.90x)")


if __name__ == "__main__":
    main()
