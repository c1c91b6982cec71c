"""Benchmark: the embedding stage inside the real pipeline vs raw ``model.encode``.

Same texts, same model, same batch size, same run. The pipeline figure covers everything
the stage costs in production: parse, heuristics, sampling, the bounded queue, the model
in a worker thread, and the chDB writes of vectors, scores and decisions (plus the
pipeline's own event/check rows). Target: pipeline >= 0.9x raw texts/s.

Texts: the AlpacaEval instructions (and outputs) in ../shared/data/traffic when present;
otherwise generated support-bot traffic (monitor/traffic.py), and the output says so.

    .venv/bin/python bench/embed.py [--repeats 2] [--responses] [--limit N]
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from monitor.assembly import build_pipeline
from monitor.config import load_settings
from monitor.pipeline import RawMessage
from monitor.scorers.embeddings import SentenceEmbedder
from monitor.scorers.torch_threads import configure_torch_threads
from monitor.store import open_store
from vigil.traffic import TrafficSpec, generate_events

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "traffic"


def load_events(limit: int) -> tuple[list[bytes], str]:
    """Wire messages of events, and where they came from."""
    files = sorted(DATA.glob("*.jsonl")) if DATA.is_dir() else []
    start = datetime(2026, 11, 22, 8, tzinfo=UTC)
    if not files:
        events = list(generate_events(TrafficSpec(n=limit, seed=1)))
        return [orjson.dumps(e) for e in events], f"generated traffic (no {DATA})"
    lines: list[bytes] = []
    for path in files:
        for i, line in enumerate(path.read_bytes().splitlines()):
            rec = orjson.loads(line)
            lines.append(orjson.dumps({
                "event_id": f"{path.stem}-{i}",
                "ts": (start + timedelta(seconds=2 * len(lines))).isoformat(),
                "model": path.stem,
                "request": {"messages": [{"role": "user", "content": rec["instruction"]}]},
                "response": {"content": rec["output"], "finish_reason": "stop"},
            }))
    return lines[:limit], f"{DATA} ({', '.join(p.name for p in files)})"


def texts_of(lines: list[bytes], responses: bool) -> list[str]:
    out = []
    for line in lines:
        event = orjson.loads(line)
        out.append(event["request"]["messages"][-1]["content"])
    if responses:
        out.extend(orjson.loads(line)["response"]["content"] for line in lines)
    return out


def run_raw(embedder: SentenceEmbedder, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    # Fed like the stage is fed: batches of `batch` events (prompts, then responses).
    embedder.model.encode(texts, batch_size=batch, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False)
    return time.perf_counter() - started


async def run_pipeline(lines: list[bytes], responses: bool, batch: int) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(overrides={
            "store": {"data_dir": str(Path(tmp) / "data")},
            "toxicity": {"enabled": False},
            "judge": {"enabled": False},
            "embedding": {"embed_responses": responses, "batch_size": batch,
                          "queue_size": len(lines) + 1},
            "sampling": {"rates": {"embedding": 1.0, "toxicity": 0.0, "judge": 0.0},
                         "budget_per_minute": {"embedding": 1e9}},
        })
        store = open_store(settings)
        pipeline = build_pipeline(settings, store, replay=True)
        try:
            await pipeline.start()
            stage = pipeline.stages["embedding"]
            messages = [RawMessage(v, "bench", str(i)) for i, v in enumerate(lines)]
            started = time.perf_counter()
            step = settings.kafka.batch_max
            for i in range(0, len(messages), step):
                await pipeline.process(messages[i : i + step])
            await pipeline.drain()
            elapsed = time.perf_counter() - started
            stats = stage.stats()
            return elapsed, int(stats["texts"]), float(stats["model_s"])
        finally:
            await pipeline.stop()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, default=1610)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--responses", action="store_true", help="also embed responses")
    args = parser.parse_args()

    lines, source = load_events(args.limit)
    texts = texts_of(lines, args.responses)
    threads = configure_torch_threads(0)
    embedder = SentenceEmbedder(batch_size=args.batch)
    embedder.encode(texts[:64])  # warm-up: first calls allocate
    print(f"data: {source}")
    # Other processes on the same cores skew both figures alike; the ratio is what counts.
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    kinds = "prompts+responses" if args.responses else "prompts"
    print(f"events {len(lines)}, texts {len(texts)} ({kinds}), "
          f"batch {args.batch}, torch threads {threads}, cpus {os.cpu_count()}")

    raw_rates, stage_rates = [], []
    for r in range(args.repeats):
        raw_s = run_raw(embedder, texts, args.batch)
        raw_rates.append(len(texts) / raw_s)
        pipe_s, scored, model_s = asyncio.run(run_pipeline(lines, args.responses, args.batch))
        if scored != len(texts):
            print(f"  warning: stage embedded {scored} texts, expected {len(texts)}")
        stage_rates.append(scored / pipe_s)
        print(f"run {r + 1}: raw encode {raw_rates[-1]:7.1f} texts/s | pipeline+stage "
              f"{stage_rates[-1]:7.1f} texts/s (model {model_s:.1f} s of {pipe_s:.1f} s) | "
              f"ratio {stage_rates[-1] / raw_rates[-1]:.2f}x")
    raw, stage = statistics.median(raw_rates), statistics.median(stage_rates)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"median: raw encode {raw:.1f} texts/s, pipeline embedding stage {stage:.1f} texts/s, "
          f"ratio {stage / raw:.2f}x (target >= 0.90x)")


if __name__ == "__main__":
    main()
